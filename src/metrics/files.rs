//! Activations and concept masks computed outside glassbox (another framework, an earlier
//! run, a cluster job), read from files, so that [`super::align`] scores them exactly as
//! [`super::inspect`] scores a model's.
//!
//! Activations ([`read_activations`]) are one `[N, K, H, W]` array (or `[K, H, W]` for one
//! image) in a `.npy`, `.npz` or `.safetensors` file.
//!
//! Masks ([`Masks::read`]) are a `.npz` or `.safetensors` file with one `[N, H, W]` mask per
//! concept, of the same `N` images in the same order, named `category:concept`
//! (`part:wheel`, `colour:red`; a bare `wheel` means `object:wheel`). A mask may be bool or
//! any number kind: nonzero means the concept is present. Masks of one category may overlap,
//! as Broden's do: a pixel then carries each of their concepts.
//!
//! A pixel that no mask of a category covers is unlabelled for that category: it is neither
//! a positive nor a negative of that category's concepts, and does not count in their IoU.
//! To count such pixels as negatives, give them a concept of their own, such as
//! `object:background`.

use std::collections::BTreeMap;
use std::path::Path;

use tch::{Kind, Tensor};

use super::MetricError;
use crate::data::{Category, Vocabulary};

/// Pixel annotations of `N` images, the way a [`crate::data::ConceptBatch`] holds them.
#[derive(Debug)]
pub struct Masks {
    pub vocabulary: Vocabulary,
    /// Per category a `[N, H, W]` int64 map of concept indices, `-1` where a pixel carries
    /// none of the category's concepts.
    pub maps: BTreeMap<Category, Tensor>,
    /// Per category `[N, R, H, W]` int64: further concepts of the category a pixel carries
    /// beyond the one in `maps` (`-1` elsewhere); absent when no pixel carries two.
    pub overlaps: BTreeMap<Category, Tensor>,
}

/// The file kinds [`read_activations`] takes.
const ACTIVATION_FILES: [Format; 3] = [Format::Npy, Format::Npz, Format::Safetensors];
/// The file kinds [`Masks::read`] takes: several named arrays.
const MASK_FILES: [Format; 2] = [Format::Npz, Format::Safetensors];
/// The names that pick the activations out of a file holding several arrays.
const ACTIVATION_NAMES: [&str; 2] = ["acts", "activations"];

/// Reads activations, `[N, K, H, W]` as float (`[K, H, W]` is one image), from a `.npy`
/// file, or from a `.npz` or `.safetensors` file that holds one array or one named `acts`
/// or `activations`.
pub fn read_activations(path: impl AsRef<Path>) -> Result<Tensor, MetricError> {
    let path = path.as_ref();
    let acts = match file_format(path, &ACTIVATION_FILES, "activations")? {
        Format::Npy => Tensor::read_npy(path).map_err(|e| unreadable(path, e))?,
        format => {
            let mut named = read_named(path, format)?;
            let picked: Vec<usize> = match named.len() {
                1 => vec![0],
                _ => (0..named.len()).filter(|&i| ACTIVATION_NAMES.contains(&named[i].0.as_str())).collect(),
            };
            let [i] = picked[..] else {
                let names: Vec<&str> = named.iter().map(|(n, _)| n.as_str()).collect();
                return Err(MetricError::Invalid(format!(
                    "{} holds {} arrays ({}); it must hold one, or one named `acts` or `activations`",
                    path.display(),
                    names.len(),
                    if names.is_empty() { "none".to_string() } else { names.join(", ") }
                )));
            };
            named.swap_remove(i).1
        }
    };
    let acts = match acts.dim() {
        4 => acts,
        3 => acts.unsqueeze(0),
        _ => {
            return Err(MetricError::Invalid(format!(
                "the activations in {} are {:?}; they must be [N, K, H, W] (images, channels, height, width), \
                 or [K, H, W] for one image",
                path.display(),
                acts.size()
            )))
        }
    };
    if matches!(acts.kind(), Kind::ComplexHalf | Kind::ComplexFloat | Kind::ComplexDouble) {
        return Err(MetricError::Invalid(format!("the activations in {} are complex numbers", path.display())));
    }
    Ok(acts.to_kind(Kind::Float))
}

impl Masks {
    /// Masks from `(name, [N, H, W] mask)` pairs named as the [module](self) says; within a
    /// category, concepts take the order of `named`, and a pixel's concept in `maps` is the
    /// first of them that covers it.
    pub fn from_named(named: Vec<(String, Tensor)>) -> Result<Masks, MetricError> {
        if named.is_empty() {
            return Err(MetricError::Invalid(
                "no masks given; give one [N, H, W] mask per concept, named `category:concept`".into(),
            ));
        }
        let mut by_category: BTreeMap<Category, Vec<(String, Tensor)>> = BTreeMap::new();
        let mut shape: Option<(String, Vec<i64>)> = None;
        for (name, mask) in named {
            let (category, concept) = parse_name(&name)?;
            let size = mask.size();
            if size.len() != 3 {
                return Err(MetricError::Invalid(format!(
                    "mask `{name}` is {size:?}; a mask must be [N, H, W] (images, height, width)"
                )));
            }
            if matches!(mask.kind(), Kind::ComplexHalf | Kind::ComplexFloat | Kind::ComplexDouble) {
                return Err(MetricError::Invalid(format!("mask `{name}` holds complex numbers; give bool or numbers")));
            }
            match &shape {
                Some((first, want)) if *want != size => {
                    return Err(MetricError::Invalid(format!(
                        "mask `{name}` is {size:?} but `{first}` is {want:?}; every mask must be [N, H, W] of the \
                         same images at the same size"
                    )))
                }
                Some(_) => {}
                None => shape = Some((name.clone(), size)),
            }
            by_category.entry(category).or_default().push((concept.to_string(), mask.ne(0)));
        }
        let vocabulary = Vocabulary::new(
            by_category.iter().map(|(c, masks)| (*c, masks.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>())),
        )
        .map_err(|e| MetricError::Invalid(format!("mask names: {e}")))?;
        let (mut maps, mut overlaps) = (BTreeMap::new(), BTreeMap::new());
        for (category, masks) in by_category {
            let mut layers = stack_layers(&masks.iter().map(|(_, m)| m).collect::<Vec<_>>());
            let primary = layers.remove(0);
            maps.insert(category, primary);
            if !layers.is_empty() {
                overlaps.insert(category, Tensor::stack(&layers, 1));
            }
        }
        Ok(Masks { vocabulary, maps, overlaps })
    }

    /// Reads masks from a `.npz` file (concepts in the file's order) or a `.safetensors` file
    /// (concepts by name, since its header keeps no order).
    pub fn read(path: impl AsRef<Path>) -> Result<Masks, MetricError> {
        let path = path.as_ref();
        let format = file_format(path, &MASK_FILES, "masks")?;
        let mut named = read_named(path, format)?;
        if format == Format::Safetensors {
            named.sort_by(|a, b| a.0.cmp(&b.0));
        }
        Masks::from_named(named).map_err(|e| match e {
            MetricError::Invalid(why) => MetricError::Invalid(format!("{}: {why}", path.display())),
            other => other,
        })
    }

    /// The number of images, `N`.
    pub fn len(&self) -> usize {
        self.maps.values().next().map_or(0, |m| m.size()[0] as usize)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `(height, width)` of the masks.
    pub fn size(&self) -> (usize, usize) {
        self.maps.values().next().map_or((0, 0), |m| (m.size()[1] as usize, m.size()[2] as usize))
    }
}

/// `category:concept`, or a bare `concept` of the objects.
fn parse_name(name: &str) -> Result<(Category, &str), MetricError> {
    let (category, concept) = match name.split_once(':') {
        Some((category, concept)) => {
            let category = category.parse::<Category>().map_err(|_| {
                MetricError::Invalid(format!(
                    "mask `{name}`: unknown category `{category}`; the categories are: {}",
                    Category::ALL.map(Category::name).join(", ")
                ))
            })?;
            (category, concept)
        }
        None => (Category::Object, name),
    };
    if concept.trim().is_empty() {
        return Err(MetricError::Invalid(format!("mask `{name}` names no concept; name masks `category:concept`")));
    }
    Ok((category, concept))
}

/// Per pixel the concepts of one category's bool `[N, H, W]` masks, in mask order: layer 0
/// the first concept covering the pixel, layer 1 the second, ..., `-1` where a pixel has no
/// more. At least one layer when there is a mask.
fn stack_layers(masks: &[&Tensor]) -> Vec<Tensor> {
    let mut layers: Vec<Tensor> = Vec::new();
    let Some(first) = masks.first() else { return layers };
    let mut count = Tensor::zeros(first.size(), (Kind::Int64, first.device()));
    for (index, mask) in masks.iter().enumerate() {
        for (r, layer) in layers.iter_mut().enumerate() {
            let slot = mask.logical_and(&count.eq(r as i64));
            *layer = layer.masked_fill(&slot, index as i64);
        }
        let beyond = mask.logical_and(&count.eq(layers.len() as i64));
        if layers.is_empty() || beyond.any().int64_value(&[]) == 1 {
            let fresh = Tensor::full(mask.size(), -1, (Kind::Int64, mask.device()));
            layers.push(fresh.masked_fill(&beyond, index as i64));
        }
        count += mask.to_kind(Kind::Int64);
    }
    layers
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Format {
    Npy,
    Npz,
    Safetensors,
}

impl Format {
    fn extension(self) -> &'static str {
        match self {
            Format::Npy => "npy",
            Format::Npz => "npz",
            Format::Safetensors => "safetensors",
        }
    }
}

/// The format of a file of `what`, by its extension, after checking the file is there.
fn file_format(path: &Path, allowed: &[Format], what: &str) -> Result<Format, MetricError> {
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let Some(format) = allowed.iter().copied().find(|f| ext.as_deref() == Some(f.extension())) else {
        let names: Vec<String> = allowed.iter().map(|f| format!(".{}", f.extension())).collect();
        return Err(MetricError::Invalid(format!(
            "{}: {what} are read from {} files, not {}",
            path.display(),
            names.join(", "),
            ext.map_or("a file without an extension".to_string(), |e| format!("`.{e}`"))
        )));
    };
    if !path.is_file() {
        return Err(MetricError::Invalid(format!("no {what} file {}", path.display())));
    }
    Ok(format)
}

fn read_named(path: &Path, format: Format) -> Result<Vec<(String, Tensor)>, MetricError> {
    match format {
        Format::Npz => Tensor::read_npz(path),
        _ => Tensor::read_safetensors(path),
    }
    .map_err(|e| unreadable(path, e))
}

fn unreadable(path: &Path, e: tch::TchError) -> MetricError {
    MetricError::Invalid(format!("cannot read {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A fresh directory for one test's files.
    fn dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("glassbox-files-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn flat(t: &Tensor) -> Vec<i64> {
        Vec::try_from(&t.reshape([-1])).unwrap()
    }

    /// A `[1, 2, 3]` bool mask from its six pixels, row-major.
    fn mask(pixels: [u8; 6]) -> Tensor {
        Tensor::from_slice(&pixels).view([1, 2, 3]).to_kind(Kind::Bool)
    }

    /// Writes an `.npz` as numpy does, bool arrays included, which tch does not write.
    fn write_numpy_npz(named: &[(&str, &Tensor)], path: &Path) {
        let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
        for (name, tensor) in named {
            let npy = path.with_extension(format!("{name}.npy").replace(':', "_"));
            let bool = tensor.kind() == Kind::Bool;
            tensor.to_kind(if bool { Kind::Uint8 } else { tensor.kind() }).write_npy(&npy).unwrap();
            let mut bytes = std::fs::read(&npy).unwrap();
            if bool {
                let at = bytes.windows(5).position(|w| w == b"'<u1'").unwrap();
                bytes[at..at + 5].copy_from_slice(b"'|b1'");
            }
            zip.start_file(format!("{name}.npy"), zip::write::FileOptions::default()).unwrap();
            std::io::Write::write_all(&mut zip, &bytes).unwrap();
        }
        zip.finish().unwrap();
    }

    fn invalid(result: Result<impl std::fmt::Debug, MetricError>) -> String {
        match result {
            Err(MetricError::Invalid(why)) => why,
            other => panic!("expected MetricError::Invalid, got {other:?}"),
        }
    }

    #[test]
    fn activations_round_trip_through_every_format() {
        let d = dir("acts");
        let acts = Tensor::randn([2, 3, 4, 5], tch::kind::FLOAT_CPU);
        acts.write_npy(d.join("a.npy")).unwrap();
        assert!(read_activations(d.join("a.npy")).unwrap().equal(&acts));
        Tensor::write_npz(&[("x", &acts)], d.join("one.npz")).unwrap();
        assert!(read_activations(d.join("one.npz")).unwrap().equal(&acts));
        let other = Tensor::zeros([7], tch::kind::FLOAT_CPU);
        Tensor::write_npz(&[("labels", &other), ("acts", &acts)], d.join("named.npz")).unwrap();
        assert!(read_activations(d.join("named.npz")).unwrap().equal(&acts));
        Tensor::write_safetensors(&[("activations", &acts), ("labels", &other)], d.join("a.safetensors")).unwrap();
        assert!(read_activations(d.join("a.safetensors")).unwrap().equal(&acts));
        // One image without its batch dimension; doubles become floats.
        acts.get(1).to_kind(Kind::Double).write_npy(d.join("one.npy")).unwrap();
        let one = read_activations(d.join("one.npy")).unwrap();
        assert_eq!((one.size(), one.kind()), (vec![1, 3, 4, 5], Kind::Float));
        assert!(one.get(0).equal(&acts.get(1)));
    }

    #[test]
    fn activation_files_that_cannot_be_read_are_named() {
        let d = dir("acts-bad");
        let missing = invalid(read_activations(d.join("absent.npy")));
        assert!(missing.contains("absent.npy") && missing.starts_with("no activations file"), "{missing}");
        let wrong = invalid(read_activations(d.join("acts.pt")));
        assert!(wrong.contains(".npy, .npz, .safetensors") && wrong.contains("`.pt`"), "{wrong}");
        assert!(invalid(read_activations(d.join("acts"))).contains("without an extension"));
        Tensor::zeros([4, 5], tch::kind::FLOAT_CPU).write_npy(d.join("flat.npy")).unwrap();
        let shape = invalid(read_activations(d.join("flat.npy")));
        assert!(shape.contains("[4, 5]") && shape.contains("[N, K, H, W]"), "{shape}");
        let a = Tensor::zeros([1, 2, 2, 2], tch::kind::FLOAT_CPU);
        Tensor::write_npz(&[("first", &a), ("second", &a)], d.join("two.npz")).unwrap();
        let two = invalid(read_activations(d.join("two.npz")));
        assert!(two.contains("2 arrays (first, second)") && two.contains("`acts`"), "{two}");
        Tensor::write_safetensors(&[("acts", &a), ("activations", &a)], d.join("both.safetensors")).unwrap();
        assert!(invalid(read_activations(d.join("both.safetensors"))).contains("holds 2 arrays"));
        std::fs::write(d.join("junk.npy"), b"not numpy").unwrap();
        let junk = invalid(read_activations(d.join("junk.npy")));
        assert!(junk.starts_with("cannot read") && junk.contains("junk.npy"), "{junk}");
    }

    #[test]
    fn overlapping_masks_become_maps_and_overlap_layers() {
        // Three objects on a 2x3 image: `a` on the left two columns, `b` on the top row,
        // `c` on the top-left pixel; one part; a colour that covers nothing.
        let masks = Masks::from_named(vec![
            ("a".into(), mask([1, 1, 0, 1, 1, 0])),
            ("object:b".into(), mask([1, 1, 1, 0, 0, 0])),
            ("object:c".into(), mask([1, 0, 0, 0, 0, 0])),
            ("part:wheel".into(), Tensor::from_slice(&[0f32, 0.5, 0., 0., 0., -2.]).view([1, 2, 3])),
            ("colour:red".into(), Tensor::zeros([1, 2, 3], tch::kind::INT64_CPU)),
        ])
        .unwrap();
        assert_eq!(masks.vocabulary.names(Category::Object), ["a", "b", "c"]);
        assert_eq!(masks.vocabulary.names(Category::Part), ["wheel"]);
        assert_eq!((masks.len(), masks.size()), (1, (2, 3)));
        assert_eq!(flat(&masks.maps[&Category::Object]), [0, 0, 1, 0, 0, -1]);
        let layers = &masks.overlaps[&Category::Object];
        assert_eq!((layers.size(), layers.kind()), (vec![1, 2, 2, 3], Kind::Int64));
        assert_eq!(flat(&layers.select(1, 0)), [1, 1, -1, -1, -1, -1]);
        assert_eq!(flat(&layers.select(1, 1)), [2, -1, -1, -1, -1, -1]);
        assert_eq!(flat(&masks.maps[&Category::Part]), [-1, 0, -1, -1, -1, 0]);
        assert_eq!(flat(&masks.maps[&Category::Colour]), [-1; 6]);
        assert_eq!(masks.overlaps.keys().collect::<Vec<_>>(), [&Category::Object]);
        assert!(masks.maps[&Category::Object].size() == [1, 2, 3]);
    }

    #[test]
    fn masks_round_trip_through_npz_and_safetensors() {
        let d = dir("masks");
        // Two images of 2x3; the objects wall and door overlap on the second pixel of each.
        let wall = Tensor::from_slice(&[1u8, 1, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0]).view([2, 2, 3]).to_kind(Kind::Bool);
        let door = Tensor::from_slice(&[0i64, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0]).view([2, 2, 3]);
        let named = [("wall", &wall), ("part:door", &door), ("object:door", &door)];
        write_numpy_npz(&named, &d.join("m.npz"));
        Tensor::write_safetensors(&named, d.join("m.safetensors")).unwrap();
        // The npz keeps the file's order, wall first; safetensors sorts by name, door first.
        let npz = Masks::read(d.join("m.npz")).unwrap();
        assert_eq!(npz.vocabulary.names(Category::Object), ["wall", "door"]);
        assert_eq!(flat(&npz.maps[&Category::Object]), [0, 0, 1, -1, 0, 0, 0, 0, 1, -1, -1, -1]);
        let safetensors = Masks::read(d.join("m.safetensors")).unwrap();
        assert_eq!(safetensors.vocabulary.names(Category::Object), ["door", "wall"]);
        assert_eq!(flat(&safetensors.maps[&Category::Object]), [1, 0, 0, -1, 1, 1, 1, 0, 0, -1, -1, -1]);
        for masks in [&npz, &safetensors] {
            assert_eq!((masks.len(), masks.size()), (2, (2, 3)));
            assert_eq!(masks.vocabulary.names(Category::Part), ["door"]);
            assert_eq!(flat(&masks.maps[&Category::Part]), [-1, 0, 0, -1, -1, -1, -1, 0, 0, -1, -1, -1]);
            // The second concept of the shared pixel is index 1 in both orders.
            assert_eq!(masks.overlaps[&Category::Object].size(), [2, 1, 2, 3]);
            assert_eq!(flat(&masks.overlaps[&Category::Object]), [-1, 1, -1, -1, -1, -1, -1, 1, -1, -1, -1, -1]);
            assert!(!masks.overlaps.contains_key(&Category::Part));
        }
    }

    #[test]
    fn bad_masks_are_refused_with_the_mask_at_fault() {
        let m = || mask([1, 0, 0, 0, 0, 0]);
        let err = |named: Vec<(&str, Tensor)>| {
            invalid(Masks::from_named(named.into_iter().map(|(n, t)| (n.to_string(), t)).collect()))
        };
        assert!(err(vec![]).contains("no masks"));
        let category = err(vec![("shape:round", m())]);
        assert!(
            category.contains("`shape:round`") && category.contains("object, part, material, colour"),
            "{category}"
        );
        assert!(err(vec![("part:", m())]).contains("names no concept"));
        let size = err(vec![("a", m()), ("b", Tensor::zeros([1, 3, 2], tch::kind::FLOAT_CPU))]);
        assert!(size.contains("mask `b` is [1, 3, 2] but `a` is [1, 2, 3]"), "{size}");
        let images = err(vec![("a", m()), ("b", Tensor::zeros([2, 2, 3], tch::kind::FLOAT_CPU))]);
        assert!(images.contains("mask `b`"), "{images}");
        let dims = err(vec![("a", Tensor::zeros([2, 3], tch::kind::FLOAT_CPU))]);
        assert!(dims.contains("mask `a` is [2, 3]") && dims.contains("[N, H, W]"), "{dims}");
        let twice = err(vec![("a", m()), ("object:a", m())]);
        assert!(twice.contains("`a` twice in category object"), "{twice}");
        assert!(err(vec![("a,b", m())]).contains("bad concept name"));
        let d = dir("masks-bad");
        let missing = invalid(Masks::read(d.join("absent.npz")));
        assert!(missing.contains("no masks file") && missing.contains("absent.npz"), "{missing}");
        let npy = invalid(Masks::read(d.join("m.npy")));
        assert!(npy.contains(".npz, .safetensors") && npy.contains("`.npy`"), "{npy}");
        write_numpy_npz(&[("shape:round", &m())], &d.join("bad.npz"));
        let named = invalid(Masks::read(d.join("bad.npz")));
        assert!(named.contains("bad.npz") && named.contains("unknown category `shape`"), "{named}");
    }
}
