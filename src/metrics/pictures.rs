//! Pictures of aligned channels: the top channels' argmax maps (SB paper figs. 11-12) and one
//! channel's activation over images (fig. 13).

use tch::{Kind, Tensor};

use super::{resolve_layer, Inspectability, MetricError};
use crate::data::ConceptDataset;
use crate::display::{self, Output, Render};
use crate::models::Tapped;
use crate::viz::Grid;

/// The first `images` images and the layer's activations on them, at image size.
fn activations<D: ConceptDataset + ?Sized>(
    model: &impl Tapped,
    result: &Inspectability,
    data: &D,
    images: usize,
) -> Result<(Tensor, Tensor), MetricError> {
    let stage = resolve_layer(model, &result.layer)?;
    let batch = data.batch(0..images.clamp(1, data.len()))?;
    let xs = batch.images.to_device(model.device());
    let (_, mut taps) = tch::no_grad(|| model.forward_taps(&xs, std::slice::from_ref(&stage), false))?;
    let acts = taps.remove(&stage).expect("tapped");
    let (h, w) = (xs.size()[2], xs.size()[3]);
    Ok((batch.images, acts.upsample_bilinear2d([h, w], false, None, None).to_device(tch::Device::Cpu)))
}

/// The `n` channels with the best mIoU, over the first `images` images of `data`: at each
/// pixel the channel that exceeds its θ* by the most, coloured and named by its concept
/// (figs. 11-12). The images are shown above the maps.
pub fn top_channels<D: ConceptDataset + ?Sized>(
    model: &impl Tapped,
    result: &Inspectability,
    data: &D,
    n: usize,
    images: usize,
) -> Result<Output, MetricError> {
    let data = &crate::data::at_size(data, model.input_size())?;
    let (shown, acts) = activations(model, result, data, images)?;
    let top: Vec<_> = result.ranked().into_iter().take(n).collect();
    let channels: Vec<i64> = top.iter().map(|c| c.channel as i64).collect();
    let thresholds: Vec<f64> =
        result.channels.iter().map(|c| if c.threshold.is_finite() { c.threshold } else { 0.0 }).collect();
    let above = acts.to_kind(Kind::Double) - Tensor::from_slice(&thresholds).view([1, -1, 1, 1]);
    let names: Vec<String> = top.iter().map(|c| format!("{} ({:.2})", result.concepts[c.concept], c.miou)).collect();
    display::show(&Grid::new(&shown).columns(images).scale(2));
    Ok(Grid::top_channels(&above, &channels, 0.0, &names).columns(images).scale(2).render())
}

/// Channel `channel`'s activation over the first `images` images (fig. 13), then where it
/// exceeds θ* over them.
pub fn channel_overlay<D: ConceptDataset + ?Sized>(
    model: &impl Tapped,
    result: &Inspectability,
    data: &D,
    channel: usize,
    images: usize,
) -> Result<Output, MetricError> {
    let Some(score) = result.channels.get(channel) else {
        return Err(MetricError::Invalid(format!("no channel {channel}; the layer has {}", result.channels.len())));
    };
    let data = &crate::data::at_size(data, model.input_size())?;
    let (shown, acts) = activations(model, result, data, images)?;
    let map = acts.select(1, channel as i64);
    display::show(&Grid::overlay(&shown, &map, 0.6).columns(images).scale(2));
    Ok(Grid::overlay(&shown, &map.gt(score.threshold), 0.6).columns(images).scale(2).render())
}
