//! Which device models and tensors live on.

use tch::Device;

/// The device glassbox computes on: the first CUDA GPU when libtorch sees one, else the CPU.
///
/// Every model handle and data loader defaults to this device, and the kernel prelude binds
/// it to the variable `device` in every notebook.
pub fn device() -> Device {
    Device::cuda_if_available()
}

/// A one-line description of a device, for banners and `:device`.
pub fn describe(device: Device) -> String {
    match device {
        Device::Cpu => format!("cpu ({} threads)", tch::get_num_threads()),
        Device::Cuda(i) => format!("cuda:{i} ({} GPU(s) visible)", tch::Cuda::device_count()),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_is_usable_for_a_tensor() {
        let d = device();
        let t = tch::Tensor::ones([2, 3], (tch::Kind::Float, d));
        assert_eq!(t.sum(tch::Kind::Float).double_value(&[]), 6.0);
        assert!(!describe(d).is_empty());
    }
}
