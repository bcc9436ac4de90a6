//! `:show DATA`: a few images of a data set beside their concept label maps, so a researcher
//! sees what the annotations of one category look like before probing a network with them.

use super::Grid;
use crate::data::{Category, ConceptDataset, DataError};
use crate::display;

/// The first `n` images of `data` and, under them, their label maps of `category` (the
/// object category when it is annotated, else the first annotated one, when `None`).
pub fn sample(
    data: &(impl ConceptDataset + ?Sized),
    n: usize,
    category: Option<Category>,
    columns: usize,
) -> Result<(Grid, Option<Grid>), DataError> {
    let n = n.min(data.len()).max(1);
    let batch = data.batch(0..n)?;
    let category = category.or_else(|| {
        let annotated: Vec<Category> = batch.concepts.keys().copied().collect();
        annotated.iter().copied().find(|c| *c == Category::Object).or(annotated.first().copied())
    });
    let scale = (128 / data.image_size().1.max(1)).clamp(1, 4) as u32;
    let images = Grid::new(&batch.images).columns(columns).scale(scale);
    let maps = match category {
        None => None,
        Some(c) => {
            let map = batch.concept_map(c).ok_or_else(|| {
                let have: Vec<String> = batch.concepts.keys().map(|k| k.to_string()).collect();
                DataError::InvalidConfig(format!("this data set has no `{c}` annotations; it has: {}", have.join(", ")))
            })?;
            Some(Grid::label_maps(map, data.vocabulary().names(c)).columns(columns).scale(scale))
        }
    };
    Ok((images, maps))
}

/// [`sample`] shown in the notebook; a failure becomes the cell's `DataError`.
pub fn show_sample(data: &(impl ConceptDataset + ?Sized), n: usize, category: Option<&str>, columns: usize) {
    let shown = category.map(str::parse::<Category>).transpose().and_then(|c| sample(data, n, c, columns));
    match shown {
        Ok((images, maps)) => {
            display::show(&images);
            if let Some(maps) = maps {
                display::show(&maps);
            }
        }
        Err(e) => crate::runtime::raise("DataError", &e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{ConceptScenes, SceneConfig};
    use crate::display::Render;

    #[test]
    fn images_and_the_chosen_category_are_drawn_at_the_same_layout() {
        let scenes = ConceptScenes::generate(6, &SceneConfig { size: 32, seed: 2, ..Default::default() }).unwrap();
        let (images, maps) = sample(&scenes, 4, Some(Category::Part), 4).unwrap();
        let (a, b) = (images.image(), maps.expect("parts are annotated").image());
        assert_eq!(a.width(), b.width());
        assert!(b.height() > a.height(), "the label maps carry a legend");
        assert!(images.render().data().contains_key("image/png"));
        let (_, default) = sample(&scenes, 2, None, 2).unwrap();
        let (_, objects) = sample(&scenes, 2, Some(Category::Object), 2).unwrap();
        assert_eq!(default.unwrap().image(), objects.unwrap().image(), "object maps by default");
    }
}
