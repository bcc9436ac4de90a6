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

/// What `:device` shows: the device in use and what libtorch sees.
pub fn report(device: Device) -> crate::display::Output {
    let cuda = if tch::Cuda::is_available() {
        format!(
            "{} CUDA device(s), cuDNN {}",
            tch::Cuda::device_count(),
            if tch::Cuda::cudnn_is_available() { "on" } else { "off" }
        )
    } else {
        "no CUDA device".to_string()
    };
    crate::display::Output::text(format!(
        "device: {}
libtorch: {cuda}; {} CPU threads",
        describe(device),
        tch::get_num_threads()
    ))
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
