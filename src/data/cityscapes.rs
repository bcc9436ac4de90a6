//! Cityscapes street scenes with their fine object annotations, read from the official layout:
//! `leftImg8bit/<split>/<city>/<name>_leftImg8bit.png` and
//! `gtFine/<split>/<city>/<name>_gtFine_labelIds.png`.
//!
//! Only [`Category::Object`] is annotated, with the 19 classes of the official training task:
//! each labelId becomes its trainId by the table of the Cityscapes scripts, and the classes
//! the task ignores (trainId 255) become -1, like unlabelled pixels elsewhere in glassbox.
//! Class names use `_` for spaces (`traffic_light`), since commands split on spaces.
//!
//! Loading is eager: every selected image and label map is decoded and resized at
//! construction and kept in memory. This is meant for the small local subsets a notebook
//! explores; full Cityscapes (5,000 images of 1024×2048) does not fit. Select with
//! [`CityscapesConfig::max_images`] and a small [`CityscapesConfig::size`].

use std::collections::BTreeMap;
use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};

use image::DynamicImage;

use super::broden::{check_size, open_image, read_rgb, resize_nearest, Stacked};
use super::{check_range, Category, ConceptBatch, ConceptDataset, DataError, Vocabulary};

/// The 19 trainId classes, in trainId order.
pub const CLASSES: [&str; 19] = [
    "road",
    "sidewalk",
    "building",
    "wall",
    "fence",
    "pole",
    "traffic_light",
    "traffic_sign",
    "vegetation",
    "terrain",
    "sky",
    "person",
    "rider",
    "car",
    "truck",
    "bus",
    "train",
    "motorcycle",
    "bicycle",
];

/// trainId per labelId 0..=33, from the Cityscapes scripts' `labels.py`; -1 where it says 255.
const TRAIN_IDS: [i64; 34] = [
    -1, -1, -1, -1, -1, -1,
    -1, // unlabeled, ego vehicle, rectification border, out of roi, static, dynamic, ground
    0, 1, -1, -1, // road, sidewalk, parking, rail track
    2, 3, 4, -1, -1, -1, // building, wall, fence, guard rail, bridge, tunnel
    5, -1, 6, 7, // pole, polegroup, traffic light, traffic sign
    8, 9, 10, // vegetation, terrain, sky
    11, 12, 13, 14, 15, -1, -1, 16, 17, 18, // person .. bicycle, with caravan and trailer ignored
];

/// The object index (trainId) of a Cityscapes labelId; -1 for ignored classes and unknown ids.
pub fn train_id(label_id: u8) -> i64 {
    TRAIN_IDS.get(label_id as usize).copied().unwrap_or(-1)
}

/// Which Cityscapes images to load, and at what size.
#[derive(Debug, Clone, PartialEq)]
pub struct CityscapesConfig {
    /// The folder under `leftImg8bit/` and `gtFine/`: `train`, `val` or `test`.
    pub split: String,
    /// Keep at most this many images, the first by city and then name.
    pub max_images: Option<usize>,
    /// `(height, width)` of every image and label map: images are resized bilinearly, label
    /// maps to the nearest pixel.
    pub size: (usize, usize),
}

impl Default for CityscapesConfig {
    /// The training split, every image, at 256×512 (a quarter of the original side).
    fn default() -> Self {
        CityscapesConfig { split: "train".into(), max_images: None, size: (256, 512) }
    }
}

/// Cityscapes images with their trainId object maps.
#[derive(Debug)]
pub struct Cityscapes {
    vocabulary: Vocabulary,
    names: Vec<String>,
    data: Stacked,
}

impl Cityscapes {
    /// Reads the images of `root` that `config` selects.
    pub fn load(root: impl AsRef<Path>, config: &CityscapesConfig) -> Result<Self, DataError> {
        let root = root.as_ref();
        check_size(config.size)?;
        let mut stems = list_images(root, &config.split)?;
        stems.truncate(config.max_images.unwrap_or(usize::MAX));
        let vocabulary = vocabulary();
        let (mut images, mut objects, mut names) = (Vec::new(), Vec::new(), Vec::new());
        for (city, stem) in stems {
            let image =
                root.join("leftImg8bit").join(&config.split).join(&city).join(format!("{stem}_leftImg8bit.png"));
            let labels =
                root.join("gtFine").join(&config.split).join(&city).join(format!("{stem}_gtFine_labelIds.png"));
            images.push(read_rgb(&image, config.size, "listed in leftImg8bit")?);
            objects.extend(read_labels(&labels, config.size, &image)?);
            names.push(format!("{city}/{stem}"));
        }
        let maps = BTreeMap::from([(Category::Object, objects)]);
        let data = Stacked::new(images, maps, BTreeMap::new(), config.size, &vocabulary);
        Ok(Cityscapes { vocabulary, names, data })
    }

    /// `<city>/<name>` of every image, in data set order.
    pub fn image_names(&self) -> &[String] {
        &self.names
    }
}

super::broden::stacked_dataset!(Cityscapes);

fn vocabulary() -> Vocabulary {
    Vocabulary::new([(Category::Object, CLASSES.to_vec())]).expect("the Cityscapes classes are unique")
}

/// `(city, name)` of every `*_leftImg8bit.png` of a split, sorted so that loading is
/// deterministic whatever order the file system lists.
fn list_images(root: &Path, split: &str) -> Result<Vec<(String, String)>, DataError> {
    let dir = root.join("leftImg8bit").join(split);
    let mut found = Vec::new();
    for city in sorted_entries(&dir)? {
        let Some(city_name) = file_name(&city) else { continue };
        if !city.is_dir() {
            continue;
        }
        for file in sorted_entries(&city)? {
            if let Some(stem) = file_name(&file).and_then(|n| n.strip_suffix("_leftImg8bit.png").map(str::to_string)) {
                found.push((city_name.clone(), stem));
            }
        }
    }
    if found.is_empty() {
        return Err(DataError::MissingData(format!("no <city>/<name>_leftImg8bit.png images under {}", dir.display())));
    }
    Ok(found)
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let entries =
        fs::read_dir(dir).map_err(|e| DataError::MissingData(format!("cannot list {}: {e}", dir.display())))?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    Ok(paths)
}

fn file_name(path: &Path) -> Option<String> {
    path.file_name().and_then(|n| n.to_str()).map(str::to_string)
}

/// A `labelIds` PNG as trainIds at `size`. Only 8-bit greyscale is accepted: converting
/// another format would silently change the ids.
fn read_labels(path: &Path, size: (usize, usize), image: &Path) -> Result<Vec<i64>, DataError> {
    let at = format!("the labels of {}", image.display());
    let DynamicImage::ImageLuma8(ids) = open_image(path, &at)? else {
        return Err(DataError::BadFile {
            file: path.display().to_string(),
            why: "not an 8-bit greyscale PNG of labelIds".into(),
        });
    };
    let (w, h) = ids.dimensions();
    let map: Vec<i64> = ids.as_raw().iter().map(|&id| train_id(id)).collect();
    Ok(resize_nearest(&map, (h as usize, w as usize), size))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::broden::tests::{fixture_dir, flat};

    /// Writes one image and its labelIds map into the official layout.
    fn write_pair(root: &Path, split: &str, city: &str, stem: &str, (h, w): (u32, u32), ids: &[u8]) {
        let images = root.join("leftImg8bit").join(split).join(city);
        let labels = root.join("gtFine").join(split).join(city);
        fs::create_dir_all(&images).unwrap();
        fs::create_dir_all(&labels).unwrap();
        image::RgbImage::from_pixel(w, h, image::Rgb([10, 20, 30]))
            .save(images.join(format!("{stem}_leftImg8bit.png")))
            .unwrap();
        image::GrayImage::from_raw(w, h, ids.to_vec())
            .unwrap()
            .save(labels.join(format!("{stem}_gtFine_labelIds.png")))
            .unwrap();
    }

    /// labelIds cycling through road, ignore (0), car, parking (ignored), bicycle, sky.
    fn ids(n: usize) -> Vec<u8> {
        [7, 0, 26, 9, 33, 23].into_iter().cycle().take(n).collect()
    }

    fn fixture(name: &str) -> PathBuf {
        let root = fixture_dir(name);
        write_pair(&root, "train", "bremen", "bremen_000001_000019", (8, 8), &ids(64));
        write_pair(&root, "train", "aachen", "aachen_000000_000019", (8, 8), &[24; 64]);
        write_pair(&root, "val", "lindau", "lindau_000000_000019", (16, 16), &ids(256));
        root
    }

    fn config(split: &str, size: (usize, usize)) -> CityscapesConfig {
        CityscapesConfig { split: split.into(), max_images: None, size }
    }

    #[test]
    fn label_ids_map_to_train_ids() {
        assert_eq!([7, 8, 11, 23, 24, 26, 33].map(train_id), [0, 1, 2, 10, 11, 13, 18]);
        assert_eq!([0, 6, 9, 29, 30, 34, 255].map(train_id), [-1; 7]);
    }

    #[test]
    fn object_maps_hold_train_ids_with_ignore_as_unlabelled() {
        let root = fixture("cityscapes-maps");
        let cs = Cityscapes::load(&root, &config("train", (8, 8))).unwrap();
        assert_eq!(cs.image_names(), ["aachen/aachen_000000_000019", "bremen/bremen_000001_000019"]);
        let batch = cs.batch(0..2).unwrap();
        assert_eq!(batch.concepts.keys().copied().collect::<Vec<_>>(), [Category::Object]);
        let maps: Vec<i64> = flat(&batch.concepts[&Category::Object]);
        assert_eq!(maps[..64], [11; 64]);
        let expected: Vec<i64> = ids(64).into_iter().map(train_id).collect();
        assert_eq!(maps[64..], expected[..]);
        assert_eq!(expected[..6], [0, -1, 13, -1, 18, 10]);
        let labels: Vec<f32> = flat(&batch.image_labels.get(1));
        let on: Vec<usize> = (0..19).filter(|&i| labels[i] == 1.0).collect();
        assert_eq!(on, [0, 10, 13, 18]);
        assert_eq!(cs.vocabulary().find("car").unwrap().index, 13);
    }

    #[test]
    fn split_size_and_max_images_are_honoured() {
        let root = fixture("cityscapes-split");
        let val = Cityscapes::load(&root, &config("val", (4, 8))).unwrap();
        assert_eq!(val.len(), 1);
        let batch = val.batch(0..1).unwrap();
        assert_eq!(batch.images.size(), [1, 3, 4, 8]);
        assert_eq!(batch.concepts[&Category::Object].size(), [1, 4, 8]);
        let first = CityscapesConfig { max_images: Some(1), ..config("train", (8, 8)) };
        assert_eq!(Cityscapes::load(&root, &first).unwrap().len(), 1);
        let err = Cityscapes::load(&root, &config("test", (8, 8))).unwrap_err();
        assert!(matches!(&err, DataError::MissingData(m) if m.contains("test")), "{err}");
    }

    #[test]
    fn missing_label_maps_are_named() {
        let root = fixture("cityscapes-missing");
        fs::remove_file(root.join("gtFine/train/bremen/bremen_000001_000019_gtFine_labelIds.png")).unwrap();
        let err = Cityscapes::load(&root, &config("train", (8, 8))).unwrap_err().to_string();
        assert!(err.contains("bremen_000001_000019_gtFine_labelIds.png") && err.contains("leftImg8bit"), "{err}");
    }
}
