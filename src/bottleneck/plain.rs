//! The plain bottleneck: SB paper table 7's "Bottleneck" row, the control that tells the
//! effect of few channels apart from the effect of semantics. A 1x1 convolution down to K
//! channels with linear outputs, neither supervised by concepts (as an SSB) nor pushed
//! towards one-hot (as a USB), trained with the later stages on the task as a USB is
//! (eq. 21 without a regulariser).

use super::{SbError, SbNet};
use crate::models::{Editable, TaskData, TrainConfig};

/// K linear channels after a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plain {
    pub channels: i64,
}

impl Plain {
    pub fn new(channels: i64) -> Result<Plain, SbError> {
        if channels < 1 {
            return Err(SbError::Invalid(format!("a bottleneck needs at least 1 channel; got {channels}")));
        }
        Ok(Plain { channels })
    }
}

/// The USBs' policy (sec. 3.1's base-model policy), so that the baseline differs from a USB
/// in its softmax alone.
pub fn default_training() -> TrainConfig {
    TrainConfig { label: "bottleneck".into(), ..super::usb::default_training() }
}

/// Inserts `plain` after `after` in (a copy of) `net` and trains it with every later stage
/// on `net`'s task on `data`; the report scores its linear outputs against `net` on `test`,
/// or on the held-out last fifth of `data`.
pub fn plain<N: Editable, D: TaskData + ?Sized>(
    net: &N,
    after: &str,
    plain: Plain,
    data: &D,
    test: Option<&D>,
    config: &TrainConfig,
) -> Result<SbNet<N>, SbError> {
    let (train, test) = super::split_examples(net, data, test)?;
    let mut sb = SbNet::insert(net, after, plain, super::Restore::AdaptNext)?;
    super::fit_with_later_stages(&sb, &train, config, |_| {}, |_| None)?;
    sb.report = Some(super::report(net, &sb, &test)?);
    Ok(sb)
}
