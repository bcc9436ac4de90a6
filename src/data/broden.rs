//! Broden, the densely labelled data set of Network Dissection, read from its layout on disk.
//!
//! A Broden root holds:
//! - `index.csv`, one image per line: `image,split,ih,iw,sh,sw,color,object,part,material,scene,texture`.
//!   A category cell holds `;`-separated mask files relative to `images/`, or a bare label
//!   number meaning the whole image carries that label, or nothing.
//! - `label.csv` (`number,name,category,frequency,coverage,syns`): the global label numbers.
//! - `c_<category>.csv` (`code,number,name,frequency,coverage`): the labels of one category,
//!   in code order; a label's index in glassbox is its position in this file.
//! - `images/`: RGB images (jpg or png) and mask PNGs, whose pixel has label number
//!   R + 256·G, 0 meaning unlabelled.
//!
//! Broden's `object`, `part`, `material` and `color` become [`Category::Object`], `Part`,
//! `Material` and `Colour`. `scene` and `texture` are left out: Broden gives them per image,
//! never per pixel, and glassbox categories are pixel label maps. A category whose column
//! `index.csv` lacks is not annotated and has no concepts.
//!
//! Loading is eager: every selected image and mask is decoded and resized at construction and
//! kept in memory. This is meant for the small local subsets a notebook explores; select with
//! [`BrodenConfig::split`] and [`BrodenConfig::max_images`].

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::ops::Range;
use std::path::Path;

use tch::{Kind, Tensor};

use super::{check_range, Category, Concept, ConceptBatch, ConceptDataset, DataError, Vocabulary};

/// glassbox's pixel categories with the names Broden gives them.
const CATEGORIES: [(Category, &str); 4] = [
    (Category::Object, "object"),
    (Category::Part, "part"),
    (Category::Material, "material"),
    (Category::Colour, "color"),
];

/// Which images of a Broden root to load, and at what size.
#[derive(Debug, Clone, PartialEq)]
pub struct BrodenConfig {
    /// Keep only images whose `split` column says this (`train`, `val`); `None` keeps all.
    pub split: Option<String>,
    /// Keep at most this many images, the first in `index.csv` order.
    pub max_images: Option<usize>,
    /// `(height, width)` of every image and label map: images are resized bilinearly, masks
    /// to the nearest pixel so that label numbers are never blended.
    pub size: (usize, usize),
}

impl Default for BrodenConfig {
    /// Every split, every image, at 224×224 (the size of `broden1_224`).
    fn default() -> Self {
        BrodenConfig { split: None, max_images: None, size: (224, 224) }
    }
}

/// The images of a Broden root with their object, part, material and colour label maps.
#[derive(Debug)]
pub struct Broden {
    vocabulary: Vocabulary,
    names: Vec<String>,
    data: Stacked,
}

impl Broden {
    /// Reads the images of `root` that `config` selects.
    ///
    /// When one image has several mask files for a category, a pixel keeps every distinct
    /// concept they give it, as NetDissect counts them: the first in the cell's order goes
    /// to the label map, the others to [`ConceptBatch::overlaps`], which have as many layers
    /// as the most concepts any pixel of the data set carries in that category.
    pub fn load(root: impl AsRef<Path>, config: &BrodenConfig) -> Result<Self, DataError> {
        let root = root.as_ref();
        check_size(config.size)?;
        let index = Table::read(&root.join("index.csv"))?;
        let columns = annotated_columns(&index);
        let labels = read_labels(&root.join("label.csv"))?;
        let mut codes = Vec::new();
        for &(category, _, name) in &columns {
            codes.push((category, read_codes(&root.join(format!("c_{name}.csv")), &labels)?));
        }
        let vocabulary = Vocabulary::new(codes.iter().map(|(c, codes)| (*c, codes.names.clone())))?;
        let rows = select_rows(&index, config)?;
        let mut names = Vec::new();
        let mut images = Vec::new();
        let mut maps: BTreeMap<Category, Vec<i64>> = BTreeMap::new();
        let mut overlaps: BTreeMap<Category, Vec<Vec<Vec<i64>>>> = BTreeMap::new();
        for row in rows {
            let image = index.field(row, "image")?;
            let at = format!("named by {}, line {}", index.file, row.line);
            images.push(read_rgb(&root.join("images").join(image), config.size, &at)?);
            for (&(category, column, name), (_, codes)) in columns.iter().zip(&codes) {
                let cell = &row.fields[column];
                let (map, layers) = read_category(root, cell, codes, config.size, &format!("{name} {at}"))?;
                maps.entry(category).or_default().extend(map);
                overlaps.entry(category).or_default().push(layers);
            }
            names.push(image.to_string());
        }
        let data = Stacked::new(images, maps, overlaps, config.size, &vocabulary);
        Ok(Broden { vocabulary, names, data })
    }

    /// The image file names, relative to `images/`, in data set order.
    pub fn image_names(&self) -> &[String] {
        &self.names
    }
}

/// `ConceptDataset` for a loader that keeps its `vocabulary`, image `names` and the eagerly
/// loaded `data: Stacked` (Broden, Cityscapes): one implementation for every on-disk format.
macro_rules! stacked_dataset {
    ($loader:ty) => {
        impl ConceptDataset for $loader {
            fn len(&self) -> usize {
                self.names.len()
            }

            fn image_size(&self) -> (usize, usize) {
                self.data.size()
            }

            fn vocabulary(&self) -> &Vocabulary {
                &self.vocabulary
            }

            fn batch(&self, range: Range<usize>) -> Result<ConceptBatch, DataError> {
                check_range(&range, self.names.len())?;
                Ok(self.data.slice(range))
            }
        }
    };
}
pub(super) use stacked_dataset;

stacked_dataset!(Broden);

/// The pixel categories `index.csv` has a column for: category, column, Broden's name.
fn annotated_columns(index: &Table) -> Vec<(Category, usize, &'static str)> {
    CATEGORIES
        .iter()
        .filter_map(|&(category, name)| index.column(name).ok().map(|column| (category, column, name)))
        .collect()
}

/// The rows of `index.csv` that `config` selects, each checked for well-formed sizes.
fn select_rows<'a>(index: &'a Table, config: &BrodenConfig) -> Result<Vec<&'a Row>, DataError> {
    let mut rows = Vec::new();
    for row in &index.rows {
        for size in ["ih", "iw", "sh", "sw"] {
            if index.column(size).is_ok() {
                index.number(row, size)?;
            }
        }
        if config.split.as_deref().is_none_or(|split| index.field(row, "split").ok() == Some(split)) {
            rows.push(row);
        }
    }
    rows.truncate(config.max_images.unwrap_or(usize::MAX));
    if rows.is_empty() {
        let mut splits: Vec<&str> = index.rows.iter().filter_map(|r| index.field(r, "split").ok()).collect();
        splits.sort_unstable();
        splits.dedup();
        return Err(DataError::MissingData(format!(
            "no images selected from {} (split {:?}, max {:?}); its splits are: {}",
            index.file,
            config.split,
            config.max_images,
            splits.join(", ")
        )));
    }
    Ok(rows)
}

/// `label.csv`: label number to name, so that `c_` files can be checked against it.
fn read_labels(path: &Path) -> Result<HashMap<u32, String>, DataError> {
    let table = Table::read(path)?;
    let mut labels = HashMap::new();
    for row in &table.rows {
        let number = table.number(row, "number")? as u32;
        labels.insert(number, table.field(row, "name")?.to_string());
    }
    Ok(labels)
}

/// The labels of one category: names in code order, and the index of each label number.
#[derive(Debug)]
struct Codes {
    names: Vec<String>,
    index_of: HashMap<u32, i64>,
    file: String,
}

/// A `c_<category>.csv` file; every number it uses must be a label of `label.csv`.
fn read_codes(path: &Path, labels: &HashMap<u32, String>) -> Result<Codes, DataError> {
    let table = Table::read(path)?;
    let mut entries = Vec::new();
    for row in &table.rows {
        let (code, number) = (table.number(row, "code")?, table.number(row, "number")? as u32);
        if !labels.contains_key(&number) {
            return Err(table.bad(row, format!("label number {number} is not in label.csv")));
        }
        entries.push((code, number, table.field(row, "name")?.to_string()));
    }
    entries.sort_by_key(|e| e.0);
    let index_of = entries.iter().enumerate().map(|(i, e)| (e.1, i as i64)).collect();
    Ok(Codes { names: entries.into_iter().map(|e| e.2).collect(), index_of, file: table.file })
}

/// One category's label map of one image, row-major at `size`, from an `index.csv` cell,
/// with the layers of further concepts its pixels carry (each row-major, `-1` where a pixel
/// has no more): a pixel's concepts in the order the cell gives them, each counted once.
fn read_category(
    root: &Path,
    cell: &str,
    codes: &Codes,
    size: (usize, usize),
    at: &str,
) -> Result<(Vec<i64>, Vec<Vec<i64>>), DataError> {
    let mut map = vec![-1i64; size.0 * size.1];
    let mut layers: Vec<Vec<i64>> = Vec::new();
    for entry in cell.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let labels = match entry.parse::<u32>() {
            Ok(number) => vec![to_index(number, codes, at)?; map.len()],
            Err(_) => read_mask(&root.join("images").join(entry), codes, size, at)?,
        };
        for (pixel, label) in labels.into_iter().enumerate().filter(|(_, l)| *l >= 0) {
            if map[pixel] < 0 {
                map[pixel] = label;
                continue;
            }
            if map[pixel] == label {
                continue;
            }
            match layers.iter().position(|layer| layer[pixel] < 0 || layer[pixel] == label) {
                Some(r) => layers[r][pixel] = label,
                None => {
                    let mut layer = vec![-1i64; map.len()];
                    layer[pixel] = label;
                    layers.push(layer);
                }
            }
        }
    }
    Ok((map, layers))
}

/// A mask PNG as category indices at `size`; label number 0 becomes -1.
fn read_mask(path: &Path, codes: &Codes, size: (usize, usize), at: &str) -> Result<Vec<i64>, DataError> {
    let rgb = open_image(path, at)?.into_rgb8();
    let (w, h) = rgb.dimensions();
    let mut map = Vec::with_capacity(rgb.len() / 3);
    for pixel in rgb.pixels() {
        let number = pixel[0] as u32 + 256 * pixel[1] as u32;
        map.push(if number == 0 { -1 } else { to_index(number, codes, &format!("{}", path.display()))? });
    }
    Ok(resize_nearest(&map, (h as usize, w as usize), size))
}

/// A label number's index in its category; numbers the `c_` file lacks are refused rather
/// than dropped, since they mean the masks and the tables disagree.
fn to_index(number: u32, codes: &Codes, at: &str) -> Result<i64, DataError> {
    codes.index_of.get(&number).copied().ok_or_else(|| DataError::BadFile {
        file: at.to_string(),
        why: format!("label number {number} is not listed in {}", codes.file),
    })
}

/// Images, label maps and image-level labels of a whole data set, kept in memory.
#[derive(Debug)]
pub(super) struct Stacked {
    images: Tensor,
    concepts: BTreeMap<Category, Tensor>,
    /// `[N, R, H, W]` per category where some pixel carries two of its concepts.
    overlaps: BTreeMap<Category, Tensor>,
    /// Per category of `overlaps`, whether each image has a pixel with two concepts, so that
    /// a batch leaves out the overlaps its images lack without looking at them.
    overlapping: BTreeMap<Category, Vec<bool>>,
    image_labels: Tensor,
    size: (usize, usize),
}

impl Stacked {
    /// Stacks `[3, H, W]` images, row-major maps of `N·H·W` indices per category, and per
    /// category and image the layers of further concepts (each `H·W`; images with fewer
    /// layers than the most any has are padded with `-1`). Image labels mark every concept
    /// that survives in the (resized) maps and layers, so they never claim one the
    /// annotations do not show.
    pub(super) fn new(
        images: Vec<Tensor>,
        maps: BTreeMap<Category, Vec<i64>>,
        overlaps: BTreeMap<Category, Vec<Vec<Vec<i64>>>>,
        size: (usize, usize),
        vocabulary: &Vocabulary,
    ) -> Stacked {
        let n = images.len();
        let (h, w) = (size.0 as i64, size.1 as i64);
        let mut labels = vec![0f32; n * vocabulary.len()];
        let pixels = size.0 * size.1;
        let mut mark = |category: Category, image: usize, values: &[i64]| {
            for &index in values.iter().filter(|&&v| v >= 0) {
                let column = vocabulary.global_index(Concept { category, index: index as usize });
                labels[image * vocabulary.len() + column] = 1.0;
            }
        };
        for (&category, map) in &maps {
            for (i, image) in map.chunks(pixels).enumerate() {
                mark(category, i, image);
            }
        }
        let mut stacked_overlaps = BTreeMap::new();
        let mut overlapping = BTreeMap::new();
        for (category, per_image) in overlaps {
            let r = per_image.iter().map(Vec::len).max().unwrap_or(0);
            if r == 0 {
                continue;
            }
            let mut flat = Vec::with_capacity(n * r * pixels);
            for (i, layers) in per_image.iter().enumerate() {
                for layer in layers {
                    mark(category, i, layer);
                    flat.extend_from_slice(layer);
                }
                flat.resize(flat.len() + (r - layers.len()) * pixels, -1);
            }
            stacked_overlaps.insert(category, Tensor::from_slice(&flat).view([n as i64, r as i64, h, w]));
            overlapping.insert(category, per_image.iter().map(|layers| !layers.is_empty()).collect());
        }
        Stacked {
            images: Tensor::stack(&images, 0),
            concepts: maps.into_iter().map(|(c, m)| (c, Tensor::from_slice(&m).view([n as i64, h, w]))).collect(),
            overlaps: stacked_overlaps,
            overlapping,
            image_labels: Tensor::from_slice(&labels).view([n as i64, vocabulary.len() as i64]),
            size,
        }
    }

    /// `(height, width)` of every image and map.
    pub(super) fn size(&self) -> (usize, usize) {
        self.size
    }

    pub(super) fn slice(&self, range: Range<usize>) -> ConceptBatch {
        let (start, len) = (range.start as i64, (range.end - range.start) as i64);
        let overlaps = self
            .overlaps
            .iter()
            .filter(|(c, _)| self.overlapping[*c][range.clone()].iter().any(|&o| o))
            .map(|(c, t)| (*c, t.narrow(0, start, len)))
            .collect();
        ConceptBatch {
            images: self.images.narrow(0, start, len),
            concepts: self.concepts.iter().map(|(c, t)| (*c, t.narrow(0, start, len))).collect(),
            overlaps,
            image_labels: self.image_labels.narrow(0, start, len),
        }
    }
}

/// Refuses empty output sizes before any file is read.
pub(super) fn check_size(size: (usize, usize)) -> Result<(), DataError> {
    if size.0 == 0 || size.1 == 0 {
        return Err(DataError::InvalidConfig(format!(
            "image size {size:?} is empty; give a height and width of 1 or more"
        )));
    }
    Ok(())
}

/// Decodes an image file; `at` says who named it, for the error.
pub(super) fn open_image(path: &Path, at: &str) -> Result<image::DynamicImage, DataError> {
    if !path.is_file() {
        return Err(DataError::MissingData(format!("image file {} not found ({at})", path.display())));
    }
    image::open(path).map_err(|e| DataError::BadFile { file: path.display().to_string(), why: e.to_string() })
}

/// An RGB image as `[3, H, W]` float in `[0, 1]`, resized bilinearly to `size`.
pub(super) fn read_rgb(path: &Path, size: (usize, usize), at: &str) -> Result<Tensor, DataError> {
    let rgb = open_image(path, at)?.into_rgb8();
    let (w, h) = rgb.dimensions();
    let image = Tensor::from_slice(rgb.as_raw()).view([h as i64, w as i64, 3]).permute([2, 0, 1]);
    let image = image.to_kind(Kind::Float) / 255.0;
    if (h as usize, w as usize) == size {
        return Ok(image.contiguous());
    }
    let resized = image.unsqueeze(0).upsample_bilinear2d([size.0 as i64, size.1 as i64], false, None, None);
    Ok(resized.squeeze_dim(0).clamp(0.0, 1.0))
}

/// Nearest-pixel resizing of a row-major `from` map, as PyTorch's `nearest` mode samples.
pub(super) fn resize_nearest(map: &[i64], from: (usize, usize), to: (usize, usize)) -> Vec<i64> {
    if from == to {
        return map.to_vec();
    }
    let mut out = Vec::with_capacity(to.0 * to.1);
    for y in 0..to.0 {
        let sy = y * from.0 / to.0;
        out.extend((0..to.1).map(|x| map[sy * from.1 + x * from.1 / to.1]));
    }
    out
}

/// One data line of a CSV table, with its line number in the file, counted from 1.
#[derive(Debug)]
struct Row {
    line: usize,
    fields: Vec<String>,
}

/// A CSV file with a header, its lines split and checked for width.
#[derive(Debug)]
struct Table {
    file: String,
    header: Vec<String>,
    rows: Vec<Row>,
}

impl Table {
    fn read(path: &Path) -> Result<Table, DataError> {
        let file = path.display().to_string();
        let text = fs::read_to_string(path).map_err(|e| DataError::MissingData(format!("cannot read {file}: {e}")))?;
        let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
        let Some((first, header)) = lines.next() else {
            return Err(DataError::BadFile { file, why: "empty; a header line was expected".into() });
        };
        let bad = |line: usize, why: String| DataError::BadLine { file: file.clone(), line, why };
        let header = split_csv(header).map_err(|why| bad(first + 1, why))?;
        let mut rows = Vec::new();
        for (i, text) in lines {
            let fields = split_csv(text).map_err(|why| bad(i + 1, why))?;
            if fields.len() != header.len() {
                let why = format!("{} fields where the header has {}", fields.len(), header.len());
                return Err(bad(i + 1, why));
            }
            rows.push(Row { line: i + 1, fields });
        }
        Ok(Table { file, header, rows })
    }

    fn column(&self, name: &str) -> Result<usize, DataError> {
        self.header.iter().position(|h| h.trim() == name).ok_or_else(|| DataError::BadFile {
            file: self.file.clone(),
            why: format!("no `{name}` column; the header is: {}", self.header.join(",")),
        })
    }

    fn field<'a>(&self, row: &'a Row, name: &str) -> Result<&'a str, DataError> {
        Ok(row.fields[self.column(name)?].trim())
    }

    /// A field that must be a non-negative integer.
    fn number(&self, row: &Row, name: &str) -> Result<usize, DataError> {
        let text = self.field(row, name)?;
        text.parse().map_err(|_| self.bad(row, format!("`{name}` is `{text}`; a non-negative integer was expected")))
    }

    fn bad(&self, row: &Row, why: String) -> DataError {
        DataError::BadLine { file: self.file.clone(), line: row.line, why }
    }
}

/// Splits one CSV line; fields may be quoted, with `""` for a quote inside (as `syns` is).
fn split_csv(line: &str) -> Result<Vec<String>, String> {
    let mut fields = vec![String::new()];
    let mut chars = line.trim_end_matches('\r').chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        let field = fields.last_mut().expect("never empty");
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            ('"', true) => quoted = false,
            ('"', false) if field.is_empty() => quoted = true,
            (',', false) => fields.push(String::new()),
            _ => field.push(c),
        }
    }
    if quoted {
        return Err("a quoted field is not closed".into());
    }
    Ok(fields)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A fresh directory for one test's fixture files.
    pub(in crate::data) fn fixture_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("glassbox-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    pub(in crate::data) fn flat<T: tch::kind::Element + Copy>(t: &Tensor) -> Vec<T> {
        Vec::try_from(&t.reshape([-1])).unwrap()
    }

    /// Writes a mask PNG whose pixels carry label `numbers` (row-major) as R + 256·G.
    fn write_mask(path: &Path, (h, w): (u32, u32), numbers: &[u32]) {
        let image = image::RgbImage::from_fn(w, h, |x, y| {
            let n = numbers[(y * w + x) as usize];
            image::Rgb([(n % 256) as u8, (n / 256) as u8, 0])
        });
        image.save(path).unwrap();
    }

    fn write_solid(path: &Path, (h, w): (u32, u32), rgb: [u8; 3]) {
        image::RgbImage::from_pixel(w, h, image::Rgb(rgb)).save(path).unwrap();
    }

    const LABELS: &str = "number,name,category,frequency,coverage,syns
0,-,-,0,0.0,
1,red,color(1),1,0.5,
2,blue,color(1),1,0.5,
3,car,object(2),2,0.5,\"automobile;auto, \"\"motorcar\"\"\"
5,wall,object(1);part(1),2,0.3,
6,wood,material(1),1,1.0,
300,wheel,part(1),1,0.1,
";

    const INDEX: &str = "image,split,ih,iw,sh,sw,color,object,part,material,scene,texture
a.png,train,8,8,8,8,a_color.png,a_object.png,a_part.png,,7,
b.jpg,val,8,8,4,4,,b_object1.png;b_object2.png,,6,,8
c.png,train,16,16,16,16,,,,,,
";

    /// Object mask of `a`: car (3) on the left half, wall (5) top right, nothing bottom right.
    fn a_object() -> Vec<u32> {
        (0..64)
            .map(|i| {
                if i % 8 < 4 {
                    3
                } else if i < 32 {
                    5
                } else {
                    0
                }
            })
            .collect()
    }

    /// A Broden root with three images: `a` fully annotated, `b` with two overlapping
    /// half-resolution object masks and a whole-image material, `c` unannotated.
    fn broden_fixture(name: &str) -> PathBuf {
        let root = fixture_dir(name);
        let images = root.join("images");
        fs::create_dir_all(&images).unwrap();
        fs::write(root.join("label.csv"), LABELS).unwrap();
        fs::write(root.join("category.csv"), "name,first,last,count,frequency\ncolor,1,2,2,2\n").unwrap();
        fs::write(root.join("c_color.csv"), "code,number,name,frequency,coverage\n2,2,blue,1,0.5\n1,1,red,1,0.5\n")
            .unwrap();
        fs::write(root.join("c_object.csv"), "code,number,name,frequency,coverage\n1,3,car,2,0.5\n2,5,wall,1,0.3\n")
            .unwrap();
        fs::write(root.join("c_part.csv"), "code,number,name,frequency,coverage\n1,300,wheel,1,0.1\n2,5,wall,1,0.1\n")
            .unwrap();
        fs::write(root.join("c_material.csv"), "code,number,name,frequency,coverage\n1,6,wood,1,1.0\n").unwrap();
        fs::write(root.join("index.csv"), INDEX).unwrap();
        write_solid(&images.join("a.png"), (8, 8), [255, 0, 0]);
        write_solid(&images.join("b.jpg"), (8, 8), [0, 0, 255]);
        write_solid(&images.join("c.png"), (16, 16), [0, 255, 0]);
        write_mask(&images.join("a_color.png"), (8, 8), &[1; 64]);
        write_mask(&images.join("a_object.png"), (8, 8), &a_object());
        write_mask(
            &images.join("a_part.png"),
            (8, 8),
            &(0..64).map(|i| if i < 8 { 300 } else { 0 }).collect::<Vec<_>>(),
        );
        // b at 4x4: the first mask labels the top row car, the second labels all wall.
        write_mask(
            &images.join("b_object1.png"),
            (4, 4),
            &(0..16).map(|i| if i < 4 { 3 } else { 0 }).collect::<Vec<_>>(),
        );
        write_mask(&images.join("b_object2.png"), (4, 4), &[5; 16]);
        root
    }

    fn config(size: (usize, usize)) -> BrodenConfig {
        BrodenConfig { size, ..Default::default() }
    }

    #[test]
    fn vocabulary_follows_the_code_order_of_the_c_files() {
        let root = broden_fixture("broden-vocab");
        let broden = Broden::load(&root, &config((8, 8))).unwrap();
        let v = broden.vocabulary();
        assert_eq!(v.names(Category::Colour), ["red", "blue"]);
        assert_eq!(v.names(Category::Object), ["car", "wall"]);
        assert_eq!(v.names(Category::Part), ["wheel", "wall"]);
        assert_eq!(v.names(Category::Material), ["wood"]);
        assert_eq!(broden.image_names(), ["a.png", "b.jpg", "c.png"]);
    }

    #[test]
    fn label_maps_equal_the_masks_written() {
        let root = broden_fixture("broden-maps");
        let broden = Broden::load(&root, &config((8, 8))).unwrap();
        let batch = broden.batch(0..1).unwrap();
        let object: Vec<i64> = flat(&batch.concepts[&Category::Object]);
        let expected: Vec<i64> = a_object()
            .iter()
            .map(|n| match n {
                3 => 0,
                5 => 1,
                _ => -1,
            })
            .collect();
        assert_eq!(object, expected);
        // 300 = 44 + 256·1 is the wheel, index 0 of the parts.
        let part: Vec<i64> = flat(&batch.concepts[&Category::Part]);
        assert_eq!(part, (0..64).map(|i| if i < 8 { 0 } else { -1 }).collect::<Vec<_>>());
        assert_eq!(flat::<i64>(&batch.concepts[&Category::Colour]), vec![0; 64]);
        assert_eq!(flat::<i64>(&batch.concepts[&Category::Material]), vec![-1; 64]);
        assert_eq!(batch.concepts[&Category::Object].size(), [1, 8, 8]);
    }

    #[test]
    fn overlapping_masks_keep_both_concepts() {
        let root = broden_fixture("broden-layers");
        let broden = Broden::load(&root, &config((8, 8))).unwrap();
        let batch = broden.batch(1..2).unwrap();
        // The 4x4 masks upsampled: the top two rows car (0) first, the rest wall (1).
        let object: Vec<i64> = flat(&batch.concepts[&Category::Object]);
        assert_eq!(object, (0..64).map(|i| if i < 16 { 0 } else { 1 }).collect::<Vec<_>>());
        // The second mask's wall on the car rows is kept as their second concept.
        assert_eq!(batch.overlaps[&Category::Object].size(), [1, 1, 8, 8]);
        let second: Vec<i64> = flat(&batch.overlaps[&Category::Object]);
        assert_eq!(second, (0..64).map(|i| if i < 16 { 1 } else { -1 }).collect::<Vec<_>>());
        // The bare number 6 in the material cell labels the whole image wood, and only that.
        assert_eq!(flat::<i64>(&batch.concepts[&Category::Material]), vec![0; 64]);
        assert_eq!(batch.overlaps.keys().collect::<Vec<_>>(), [&Category::Object]);
    }

    #[test]
    fn a_repeated_concept_is_not_duplicated() {
        let root = broden_fixture("broden-repeated");
        fs::write(root.join("label.csv"), format!("{LABELS}7,sky,object(1),1,0.1,\n")).unwrap();
        fs::write(
            root.join("c_object.csv"),
            "code,number,name,frequency,coverage\n1,3,car,2,0.5\n2,5,wall,1,0.3\n3,7,sky,1,0.1\n",
        )
        .unwrap();
        // Car on the top row, wall everywhere twice, then sky everywhere, then car everywhere.
        let index = INDEX.replace("b_object1.png;b_object2.png", "b_object1.png;b_object2.png;b_object2.png;7;3");
        fs::write(root.join("index.csv"), index).unwrap();
        let broden = Broden::load(&root, &config((8, 8))).unwrap();
        let batch = broden.batch(1..2).unwrap();
        let top = |i: usize| i < 16;
        let object: Vec<i64> = flat(&batch.concepts[&Category::Object]);
        assert_eq!(object, (0..64).map(|i| if top(i) { 0 } else { 1 }).collect::<Vec<_>>());
        // Three distinct concepts a pixel at most, so two layers, though the cell names five.
        let layers = &batch.overlaps[&Category::Object];
        assert_eq!(layers.size(), [1, 2, 8, 8]);
        let first: Vec<i64> = flat(&layers.select(1, 0));
        assert_eq!(first, (0..64).map(|i| if top(i) { 1 } else { 2 }).collect::<Vec<_>>());
        let second: Vec<i64> = flat(&layers.select(1, 1));
        assert_eq!(second, (0..64).map(|i| if top(i) { 2 } else { 0 }).collect::<Vec<_>>());
        // Image labels mark sky, which only the overlaps hold.
        assert_eq!(flat::<f32>(&batch.image_labels)[0..3], [1., 1., 1.]);
        // An image without overlaps in a data set with some has none in its batch; with the
        // overlapping one, it is padded with -1.
        assert!(broden.batch(0..1).unwrap().overlaps.is_empty());
        let both = broden.batch(0..2).unwrap();
        assert_eq!(both.overlaps[&Category::Object].size(), [2, 2, 8, 8]);
        assert_eq!(flat::<i64>(&both.overlaps[&Category::Object].get(0)), vec![-1; 128]);
    }

    #[test]
    fn data_without_overlaps_has_empty_overlaps() {
        let root = broden_fixture("broden-no-overlaps");
        fs::write(root.join("index.csv"), INDEX.replace("b_object1.png;b_object2.png", "b_object2.png")).unwrap();
        let broden = Broden::load(&root, &config((8, 8))).unwrap();
        let batch = broden.batch(0..3).unwrap();
        assert!(batch.overlaps.is_empty());
        assert_eq!(flat::<i64>(&batch.concepts[&Category::Object].get(1)), vec![1; 64]);
        let moved = batch.to_device(tch::Device::Cpu);
        assert!(moved.overlaps.is_empty());
    }

    #[test]
    fn image_labels_mark_the_concepts_in_the_maps() {
        let root = broden_fixture("broden-image-labels");
        let broden = Broden::load(&root, &config((8, 8))).unwrap();
        let batch = broden.batch(0..3).unwrap();
        // Columns: object car, wall; part wheel, wall; material wood; colour red, blue.
        let labels: Vec<f32> = flat(&batch.image_labels);
        assert_eq!(&labels[0..7], [1., 1., 1., 0., 0., 1., 0.]);
        assert_eq!(&labels[7..14], [1., 1., 0., 0., 1., 0., 0.]);
        assert_eq!(&labels[14..21], [0.; 7]);
        assert_eq!(flat::<i64>(&batch.concepts[&Category::Object])[128..], [-1; 64]);
    }

    #[test]
    fn split_and_max_images_select_rows() {
        let root = broden_fixture("broden-split");
        let val = BrodenConfig { split: Some("val".into()), ..config((8, 8)) };
        assert_eq!(Broden::load(&root, &val).unwrap().image_names(), ["b.jpg"]);
        let train = BrodenConfig { split: Some("train".into()), max_images: Some(1), ..config((8, 8)) };
        assert_eq!(Broden::load(&root, &train).unwrap().image_names(), ["a.png"]);
        let test = BrodenConfig { split: Some("test".into()), ..config((8, 8)) };
        let err = Broden::load(&root, &test).unwrap_err().to_string();
        assert!(err.contains("train, val"), "{err}");
    }

    #[test]
    fn images_and_maps_are_resized() {
        let root = broden_fixture("broden-resize");
        let broden = Broden::load(&root, &config((4, 6))).unwrap();
        assert_eq!(broden.image_size(), (4, 6));
        let batch = broden.batch(0..3).unwrap();
        assert_eq!(batch.images.size(), [3, 3, 4, 6]);
        assert_eq!(batch.concepts[&Category::Part].size(), [3, 4, 6]);
        // A solid green 16x16 image stays solid green; red and the decoded jpeg blue stay close.
        let green: Vec<f32> = flat(&batch.images.get(2));
        assert!(green[..24].iter().all(|&v| v == 0.0) && green[24..48].iter().all(|&v| v == 1.0));
        let blue: Vec<f32> = flat(&batch.images.get(1).get(2));
        assert!(blue.iter().all(|&v| v > 0.9), "{blue:?}");
        let object: Vec<i64> = flat(&batch.concepts[&Category::Object].get(0));
        assert_eq!(&object[..6], [0, 0, 0, 1, 1, 1]);
        assert_eq!(&object[18..], [0, 0, 0, -1, -1, -1]);
        // b's overlaps are resized with its maps: wall on the car row, the top one of four.
        let second: Vec<i64> = flat(&batch.overlaps[&Category::Object].get(1));
        assert_eq!(second, (0..24).map(|i| if i < 6 { 1 } else { -1 }).collect::<Vec<_>>());
    }

    #[test]
    fn missing_index_is_named() {
        let root = fixture_dir("broden-no-index");
        let err = Broden::load(&root, &BrodenConfig::default()).unwrap_err();
        assert!(matches!(&err, DataError::MissingData(m) if m.contains("index.csv")), "{err}");
    }

    #[test]
    fn malformed_lines_are_named_by_number() {
        let root = broden_fixture("broden-bad-line");
        let short = INDEX.replace("c.png,train,16,16,16,16,,,,,,", "c.png,train,16,16");
        fs::write(root.join("index.csv"), short).unwrap();
        let err = Broden::load(&root, &config((8, 8))).unwrap_err();
        assert!(matches!(&err, DataError::BadLine { line: 4, .. }), "{err}");
        assert!(err.to_string().contains("4 fields where the header has 12"), "{err}");
        let size = INDEX.replace("b.jpg,val,8,8", "b.jpg,val,8,eight");
        fs::write(root.join("index.csv"), size).unwrap();
        let err = Broden::load(&root, &config((8, 8))).unwrap_err();
        assert!(matches!(&err, DataError::BadLine { line: 3, .. }) && err.to_string().contains("`iw`"), "{err}");
    }

    #[test]
    fn missing_images_and_unknown_labels_are_refused() {
        let root = broden_fixture("broden-missing");
        fs::remove_file(root.join("images").join("b_object2.png")).unwrap();
        let err = Broden::load(&root, &config((8, 8))).unwrap_err().to_string();
        assert!(err.contains("b_object2.png") && err.contains("line 3"), "{err}");
        let root = broden_fixture("broden-unknown");
        write_mask(&root.join("images").join("a_color.png"), (8, 8), &[3; 64]);
        let err = Broden::load(&root, &config((8, 8))).unwrap_err().to_string();
        assert!(err.contains("label number 3") && err.contains("c_color.csv"), "{err}");
    }

    #[test]
    fn quoted_csv_fields_keep_their_commas() {
        assert_eq!(split_csv("1,\"a, \"\"b\"\"\",").unwrap(), ["1", "a, \"b\"", ""]);
        assert!(split_csv("1,\"open").is_err());
        assert_eq!(resize_nearest(&[1, 2, 3, 4], (2, 2), (4, 4))[..8], [1, 1, 2, 2, 1, 1, 2, 2]);
    }
}
