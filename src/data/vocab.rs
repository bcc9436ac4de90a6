//! Concept vocabularies in the style of Broden: named concepts grouped into categories.
//!
//! A concept is addressed by its category and its index inside that category, which is also
//! the value it takes in that category's per-pixel label map. Image-level labels use one
//! column per concept, in [`Vocabulary::global_index`] order.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use super::DataError;

/// The kinds of concept a pixel can be labelled with. Each category has its own label map,
/// so one pixel can be at once a `car`, its `wheel`, `checker` and `black`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Category {
    /// Whole things and backgrounds: what a segmentation task predicts.
    Object,
    /// Parts of objects; background pixels have none.
    Part,
    /// Surface materials and textures.
    Material,
    /// Colour names.
    Colour,
}

impl Category {
    /// Every category, in label-column order.
    pub const ALL: [Category; 4] = [Category::Object, Category::Part, Category::Material, Category::Colour];

    /// The name commands and completions use.
    pub fn name(self) -> &'static str {
        match self {
            Category::Object => "object",
            Category::Part => "part",
            Category::Material => "material",
            Category::Colour => "colour",
        }
    }

    /// Parses a comma-separated list such as `part,material`, as given to `--categories`.
    pub fn parse_list(list: &str) -> Result<Vec<Category>, DataError> {
        let mut out = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let category = item.parse()?;
            if !out.contains(&category) {
                out.push(category);
            }
        }
        Ok(out)
    }

    fn position(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Category {
    type Err = DataError;

    /// Accepts the names of [`Category::name`], any case, and `color`, which Broden spells so.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        let alias = if lower == "color" { "colour" } else { lower.as_str() };
        Category::ALL.into_iter().find(|c| c.name() == alias).ok_or_else(|| DataError::UnknownCategory {
            name: s.to_string(),
            allowed: Category::ALL.map(Category::name).join(", "),
        })
    }
}

/// One concept of a vocabulary: its category and its label value in that category's map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Concept {
    pub category: Category,
    pub index: usize,
}

/// Concept names per category, with lookups both ways.
///
/// Names are unique within a category but may repeat across categories (`wall` is both a
/// background object and a part of a house), so lookups accept `category:name` and refuse a
/// bare name that is ambiguous.
#[derive(Debug, Clone, PartialEq)]
pub struct Vocabulary {
    names: [Vec<String>; 4],
    by_name: BTreeMap<String, Vec<Concept>>,
}

impl Vocabulary {
    /// Builds a vocabulary from concept names per category; categories left out have none.
    pub fn new<I, S>(lists: I) -> Result<Self, DataError>
    where
        I: IntoIterator<Item = (Category, Vec<S>)>,
        S: Into<String>,
    {
        let mut names: [Vec<String>; 4] = Default::default();
        for (category, list) in lists {
            names[category.position()].extend(list.into_iter().map(Into::into));
        }
        let mut by_name: BTreeMap<String, Vec<Concept>> = BTreeMap::new();
        for category in Category::ALL {
            for (index, name) in names[category.position()].iter().enumerate() {
                check_name(name)?;
                let entry = by_name.entry(name.clone()).or_default();
                if entry.iter().any(|c| c.category == category) {
                    return Err(DataError::InvalidVocabulary(format!("`{name}` twice in category {category}")));
                }
                entry.push(Concept { category, index });
            }
        }
        Ok(Vocabulary { names, by_name })
    }

    /// The vocabulary of the procedural concept scenes.
    pub fn scenes() -> &'static Vocabulary {
        static SCENES: OnceLock<Vocabulary> = OnceLock::new();
        SCENES.get_or_init(super::scenes::vocabulary)
    }

    /// The number of concepts over all categories: the width of image-level labels.
    pub fn len(&self) -> usize {
        self.names.iter().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The categories that have at least one concept.
    pub fn categories(&self) -> Vec<Category> {
        Category::ALL.into_iter().filter(|c| !self.names(*c).is_empty()).collect()
    }

    /// The concept names of one category, in label order.
    pub fn names(&self, category: Category) -> &[String] {
        &self.names[category.position()]
    }

    /// The concepts of one category, in label order.
    pub fn concepts(&self, category: Category) -> impl Iterator<Item = Concept> + '_ {
        (0..self.names(category).len()).map(move |index| Concept { category, index })
    }

    /// Every concept, in image-label column order.
    pub fn all(&self) -> impl Iterator<Item = Concept> + '_ {
        Category::ALL.into_iter().flat_map(|c| self.concepts(c))
    }

    /// The bare name of a concept.
    ///
    /// # Panics
    /// If the concept is not of this vocabulary.
    pub fn name(&self, concept: Concept) -> &str {
        &self.names(concept.category)[concept.index]
    }

    /// `category:name`, which [`Vocabulary::find`] always resolves.
    pub fn qualified_name(&self, concept: Concept) -> String {
        format!("{}:{}", concept.category, self.name(concept))
    }

    /// The shortest name that [`Vocabulary::find`] resolves to this concept.
    pub fn display_name(&self, concept: Concept) -> String {
        let name = self.name(concept);
        if self.by_name[name].len() == 1 {
            name.to_string()
        } else {
            self.qualified_name(concept)
        }
    }

    /// Resolves `name` or `category:name` (the category as [`Category::from_str`] reads it).
    pub fn find(&self, name: &str) -> Result<Concept, DataError> {
        let name = name.trim();
        if let Some((category, bare)) = name.split_once(':') {
            let category: Category = category.parse()?;
            return self
                .names(category)
                .iter()
                .position(|n| n == bare)
                .map(|index| Concept { category, index })
                .ok_or_else(|| DataError::UnknownConcept(name.to_string()));
        }
        match self.by_name.get(name).map(Vec::as_slice) {
            Some([one]) => Ok(*one),
            Some(many) => Err(DataError::AmbiguousConcept {
                name: name.to_string(),
                candidates: many.iter().map(|c| self.qualified_name(*c)).collect::<Vec<_>>().join(", "),
            }),
            None => Err(DataError::UnknownConcept(name.to_string())),
        }
    }

    /// The column of a concept in image-level labels.
    pub fn global_index(&self, concept: Concept) -> usize {
        let before: usize = Category::ALL[..concept.category.position()].iter().map(|c| self.names(*c).len()).sum();
        before + concept.index
    }

    /// The concept in a given image-label column.
    pub fn concept_at(&self, global_index: usize) -> Option<Concept> {
        self.all().nth(global_index)
    }

    /// Names starting with `prefix`, each as [`Vocabulary::display_name`] gives it, in
    /// column order; with a `category:` prefix, the qualified names of that category.
    pub fn complete(&self, prefix: &str) -> Vec<String> {
        if let Some((category, bare)) = prefix.split_once(':') {
            let Ok(category) = category.parse::<Category>() else { return Vec::new() };
            return self
                .concepts(category)
                .filter(|c| self.name(*c).starts_with(bare))
                .map(|c| self.qualified_name(c))
                .collect();
        }
        self.all().filter(|c| self.name(*c).starts_with(prefix)).map(|c| self.display_name(c)).collect()
    }
}

/// `:` separates a category from a name and `,` separates list items in commands.
fn check_name(name: &str) -> Result<(), DataError> {
    if name.is_empty() || name.trim() != name || name.contains([':', ',']) {
        return Err(DataError::InvalidVocabulary(format!("bad concept name `{name}`")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Vocabulary {
        Vocabulary::new([
            (Category::Object, vec!["sky", "wall", "car"]),
            (Category::Part, vec!["wall", "wheel"]),
            (Category::Colour, vec!["red"]),
        ])
        .unwrap()
    }

    #[test]
    fn category_names_round_trip() {
        for c in Category::ALL {
            assert_eq!(c.name().parse::<Category>().unwrap(), c);
        }
        assert_eq!("Color".parse::<Category>().unwrap(), Category::Colour);
    }

    #[test]
    fn unknown_category_lists_the_allowed_names() {
        let err = "texture".parse::<Category>().unwrap_err().to_string();
        assert!(err.contains("texture") && err.contains("object, part, material, colour"), "{err}");
    }

    #[test]
    fn category_lists_parse() {
        assert_eq!(Category::parse_list("part, material,part").unwrap(), vec![Category::Part, Category::Material]);
        assert!(Category::parse_list("part,scene").is_err());
    }

    #[test]
    fn names_and_concepts_round_trip() {
        let v = small();
        assert_eq!(v.len(), 6);
        for (column, concept) in v.all().enumerate() {
            assert_eq!(v.global_index(concept), column);
            assert_eq!(v.concept_at(column), Some(concept));
            assert_eq!(v.find(&v.qualified_name(concept)).unwrap(), concept);
            assert_eq!(v.find(&v.display_name(concept)).unwrap(), concept);
        }
        assert_eq!(v.concept_at(6), None);
        assert_eq!(v.find("wheel").unwrap(), Concept { category: Category::Part, index: 1 });
        assert_eq!(v.categories(), vec![Category::Object, Category::Part, Category::Colour]);
    }

    #[test]
    fn ambiguous_and_unknown_names_are_refused() {
        let v = small();
        let err = v.find("wall").unwrap_err().to_string();
        assert!(err.contains("object:wall") && err.contains("part:wall"), "{err}");
        assert!(matches!(v.find("boat"), Err(DataError::UnknownConcept(_))));
        assert!(matches!(v.find("colour:blue"), Err(DataError::UnknownConcept(_))));
        assert!(matches!(v.find("shape:red"), Err(DataError::UnknownCategory { .. })));
    }

    #[test]
    fn completion_qualifies_only_ambiguous_names() {
        let v = small();
        assert_eq!(v.complete("w"), vec!["object:wall", "part:wall", "wheel"]);
        assert_eq!(v.complete("part:w"), vec!["part:wall", "part:wheel"]);
        assert!(v.complete("zz").is_empty());
    }

    #[test]
    fn bad_vocabularies_are_refused() {
        assert!(Vocabulary::new([(Category::Part, vec!["arm", "arm"])]).is_err());
        assert!(Vocabulary::new([(Category::Part, vec!["a:b"])]).is_err());
        assert!(Vocabulary::new([(Category::Part, vec![""])]).is_err());
    }
}
