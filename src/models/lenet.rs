//! A LeNet-5-style CNN for 32x32 digits (ColorMNIST), with named stages.
//!
//! Its stages use the same [`Stage`] type as the ResNet (`conv1`, `conv2`, `fc1`, `fc2`,
//! `head`), so probes, metrics and `:commands` take either model. Convolutional stages
//! output feature maps after ReLU and 2x2 max pooling; fully connected ones `[N, F]`
//! vectors after ReLU.

use tch::nn::{self, ModuleT};
use tch::{Device, Tensor};

use super::relu::relu;
use super::{check_input, check_taps, ModelError, Stage, StageInfo, Tapped, Taps, Task};

/// The shape of a [`LeNet`].
#[derive(Debug, Clone, PartialEq)]
pub struct LeNetConfig {
    /// 1 for grey digits, 3 for ColorMNIST.
    pub in_channels: i64,
    pub num_classes: i64,
    /// Height and width of the (square) input; 32 in the original.
    pub input_size: i64,
    /// Channels of `conv1` and `conv2` (6 and 16 in the original).
    pub conv_channels: [i64; 2],
    /// Features of `fc1` and `fc2` (120 and 84 in the original).
    pub fc_features: [i64; 2],
}

impl Default for LeNetConfig {
    fn default() -> Self {
        LeNetConfig { in_channels: 3, num_classes: 10, input_size: 32, conv_channels: [6, 16], fc_features: [120, 84] }
    }
}

impl LeNetConfig {
    /// Side of `conv2`'s output: two rounds of a valid 5x5 convolution and 2x2 pooling.
    fn conv2_side(&self) -> i64 {
        ((self.input_size - 4) / 2 - 4) / 2
    }

    pub fn validate(&self) -> Result<(), ModelError> {
        let positive = [
            self.in_channels,
            self.num_classes,
            self.conv_channels[0],
            self.conv_channels[1],
            self.fc_features[0],
            self.fc_features[1],
        ];
        if positive.iter().any(|v| *v < 1) {
            return Err(ModelError::InvalidConfig(format!(
                "channels, features and classes must be positive: {self:?}"
            )));
        }
        if self.input_size < 16 {
            return Err(ModelError::InvalidConfig(format!(
                "input_size {} is below 16, the smallest LeNet takes",
                self.input_size
            )));
        }
        Ok(())
    }
}

/// LeNet-5 with ReLU and max pooling. Owns its weights.
#[derive(Debug)]
pub struct LeNet {
    config: LeNetConfig,
    vs: nn::VarStore,
    conv1: nn::Conv2D,
    conv2: nn::Conv2D,
    fc1: nn::Linear,
    fc2: nn::Linear,
    head: nn::Linear,
}

impl LeNet {
    /// A freshly initialised net (draws from libtorch's generator: seed it first).
    pub fn new(config: LeNetConfig, device: Device) -> Result<LeNet, ModelError> {
        config.validate()?;
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let [c1, c2] = config.conv_channels;
        let [f1, f2] = config.fc_features;
        let flat = c2 * config.conv2_side() * config.conv2_side();
        let conv1 = nn::conv2d(&root / "conv1", config.in_channels, c1, 5, Default::default());
        let conv2 = nn::conv2d(&root / "conv2", c1, c2, 5, Default::default());
        let fc1 = nn::linear(&root / "fc1", flat, f1, Default::default());
        let fc2 = nn::linear(&root / "fc2", f1, f2, Default::default());
        let head = nn::linear(&root / "head", f2, config.num_classes, Default::default());
        Ok(LeNet { config, vs, conv1, conv2, fc1, fc2, head })
    }

    /// An independent copy: same weights, its own `VarStore`.
    pub fn try_clone(&self) -> Result<LeNet, ModelError> {
        let copy = LeNet::new(self.config.clone(), self.vs.device())?;
        super::copy_matching(&self.vs, &copy.vs);
        Ok(copy)
    }

    pub fn config(&self) -> &LeNetConfig {
        &self.config
    }
}

impl ModuleT for LeNet {
    /// The logits `[N, num_classes]`.
    ///
    /// # Panics
    /// On a wrong input shape; [`Tapped::forward_taps`] reports it instead.
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.forward_taps(xs, &[], train).unwrap_or_else(|e| panic!("{e}")).0
    }
}

impl LeNet {
    /// One forward pass keeping the outputs of `taps`, each stage of `at` passed through
    /// `edit` on its way on.
    fn pass(
        &self,
        xs: &Tensor,
        taps: &[Stage],
        at: &[Stage],
        edit: &dyn Fn(&Stage, Tensor) -> Tensor,
    ) -> Result<(Tensor, Taps), ModelError> {
        check_input(xs, self.config.in_channels)?;
        let size = xs.size();
        if size[2] != self.config.input_size || size[3] != self.config.input_size {
            let s = self.config.input_size;
            return Err(ModelError::BadInput(format!("LeNet takes {s}x{s} images; got {}x{}", size[2], size[3])));
        }
        check_taps(&self.stages(), taps)?;
        check_taps(&self.stages(), at)?;
        let mut out = Taps::new();
        let mut stage = |stage: Stage, t: Tensor| {
            let t = if at.contains(&stage) { edit(&stage, t) } else { t };
            if taps.contains(&stage) {
                out.insert(stage, t.shallow_clone());
            }
            t
        };
        let x = stage(Stage::Conv(1), relu(&xs.apply(&self.conv1)).max_pool2d_default(2));
        let x = stage(Stage::Conv(2), relu(&x.apply(&self.conv2)).max_pool2d_default(2));
        let x = stage(Stage::Fc(1), relu(&x.flatten(1, -1).apply(&self.fc1)));
        let x = stage(Stage::Fc(2), relu(&x.apply(&self.fc2)));
        let logits = stage(Stage::Head, x.apply(&self.head));
        Ok((logits, out))
    }
}

impl Tapped for LeNet {
    fn stages(&self) -> Vec<StageInfo> {
        let c = &self.config;
        [
            (Stage::Conv(1), c.conv_channels[0]),
            (Stage::Conv(2), c.conv_channels[1]),
            (Stage::Fc(1), c.fc_features[0]),
            (Stage::Fc(2), c.fc_features[1]),
            (Stage::Head, c.num_classes),
        ]
        .into_iter()
        .map(|(stage, channels)| StageInfo { stage, channels })
        .collect()
    }

    fn forward_taps(&self, xs: &Tensor, taps: &[Stage], _train: bool) -> Result<(Tensor, Taps), ModelError> {
        self.pass(xs, taps, &[], &|_, t| t)
    }

    fn forward_edited(
        &self,
        xs: &Tensor,
        at: &[Stage],
        edit: &dyn Fn(&Stage, Tensor) -> Tensor,
    ) -> Result<Tensor, ModelError> {
        Ok(self.pass(xs, &[], at, edit)?.0)
    }

    fn runs_in_glassbox(&self) -> bool {
        true
    }

    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    fn in_channels(&self) -> i64 {
        self.config.in_channels
    }

    fn task(&self) -> Task {
        Task::Classification
    }

    fn num_classes(&self) -> i64 {
        self.config.num_classes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_have_the_lenet5_shapes() {
        let _serial = crate::models::serial();
        let net = LeNet::new(LeNetConfig::default(), Device::Cpu).unwrap();
        let shapes: Vec<(String, Vec<i64>)> =
            net.output_shapes((32, 32)).unwrap().into_iter().map(|(s, v)| (s.to_string(), v)).collect();
        let expected = [
            ("conv1", vec![1, 6, 14, 14]),
            ("conv2", vec![1, 16, 5, 5]),
            ("fc1", vec![1, 120]),
            ("fc2", vec![1, 84]),
            ("head", vec![1, 10]),
        ];
        assert_eq!(shapes, expected.map(|(s, v)| (s.to_owned(), v)));
    }

    #[test]
    fn wrong_inputs_and_stages_are_refused() {
        let _serial = crate::models::serial();
        let net = LeNet::new(LeNetConfig { in_channels: 1, ..Default::default() }, Device::Cpu).unwrap();
        let err = net.forward_taps(&Tensor::zeros([1, 1, 28, 28], tch::kind::FLOAT_CPU), &[], false).unwrap_err();
        assert!(err.to_string().contains("32x32 images; got 28x28"), "{err}");
        let err = net.stage("stage1").unwrap_err().to_string();
        assert!(err.contains("conv1 (6), conv2 (16), fc1 (120), fc2 (84), head (10)"), "{err}");
    }
}
