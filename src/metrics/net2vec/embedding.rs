//! Concept weights as embeddings in a layer's filter space (Net2Vec sec. 5.3): nearest
//! concepts by cosine (table 2), vector arithmetic (table 3) and the distance between two
//! embedding spaces, of two layers or two models (`D_ij`, fig. 10).
//!
//! As in the paper, vectors are compared after normalisation to unit length,
//! `w' = w / ‖w‖`.

use crate::display::{Output, Render};
use crate::metrics::MetricError;
use crate::viz::Heatmap;

/// Concept names and their weight vectors, one per concept.
#[derive(Debug, Clone, PartialEq)]
pub struct ConceptEmbedding {
    /// Usually `category:name`; a bare name finds its concept when no other shares it.
    pub names: Vec<String>,
    /// The learned weights `w` (not normalised), all of one length K.
    pub vectors: Vec<Vec<f64>>,
}

/// The concepts nearest a query, best first, with their cosine.
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbours {
    /// The concept or expression asked about.
    pub query: String,
    pub neighbours: Vec<(String, f64)>,
}

/// `D_ij` between two embedding spaces (sec. 5.3) over the concepts both have.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingDistance {
    pub concepts: Vec<String>,
    /// `D_ij = ‖d(W^i) − d(W^j)‖²`, with `d(W) = W Wᵀ` the cosine matrix of the normalised
    /// embeddings.
    pub total: f64,
    /// `D_ij,c = ‖d(W^i)_c − d(W^j)_c‖²`, row `c` of the cosine matrices, per concept.
    pub per_concept: Vec<f64>,
}

fn unit(v: &[f64]) -> Vec<f64> {
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm > 0.0 {
        v.iter().map(|x| x / norm).collect()
    } else {
        v.to_vec()
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The bare part of `category:name`.
fn bare(name: &str) -> &str {
    name.split_once(':').map_or(name, |(_, b)| b)
}

impl ConceptEmbedding {
    /// Checks that every concept has a vector, all of one non-zero length, and a unique name.
    pub fn new(names: Vec<String>, vectors: Vec<Vec<f64>>) -> Result<Self, MetricError> {
        if names.len() != vectors.len() || names.is_empty() {
            return Err(MetricError::Invalid(format!(
                "an embedding needs one vector per concept; got {} names and {} vectors",
                names.len(),
                vectors.len()
            )));
        }
        let k = vectors[0].len();
        if k == 0 || vectors.iter().any(|v| v.len() != k) {
            return Err(MetricError::Invalid("every concept vector must have the same, non-zero length".into()));
        }
        if let Some(dup) = names.iter().enumerate().find(|(i, n)| names[..*i].contains(n)) {
            return Err(MetricError::Invalid(format!("concept `{}` appears twice", dup.1)));
        }
        Ok(ConceptEmbedding { names, vectors })
    }

    /// The number of concepts.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// K, the length of every vector.
    pub fn dims(&self) -> usize {
        self.vectors.first().map_or(0, Vec::len)
    }

    /// The index of a concept: its full name, or a bare name that only one concept has. The
    /// error names the closest concept and lists the allowed ones.
    pub fn find(&self, name: &str) -> Result<usize, MetricError> {
        let name = name.trim();
        if let Some(i) = self.names.iter().position(|n| n == name) {
            return Ok(i);
        }
        let matches: Vec<usize> = (0..self.len()).filter(|&i| bare(&self.names[i]) == name).collect();
        match matches.as_slice() {
            [one] => Ok(*one),
            [] => {
                let candidates = self.names.iter().map(String::as_str).chain(self.names.iter().map(|n| bare(n)));
                let hint = crate::suggest::closest(name, candidates)
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                Err(MetricError::Invalid(format!(
                    "unknown concept `{name}`{hint}; the embedding has: {}",
                    self.names.join(", ")
                )))
            }
            many => Err(MetricError::Invalid(format!(
                "concept `{name}` is ambiguous; say one of: {}",
                many.iter().map(|&i| self.names[i].as_str()).collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    /// The normalised vector of concept `i`.
    fn unit(&self, i: usize) -> Vec<f64> {
        unit(&self.vectors[i])
    }

    /// The `n` concepts whose vectors point most nearly the way `v` does, by cosine, leaving
    /// out `exclude`.
    pub fn nearest_to(&self, v: &[f64], n: usize, exclude: &[usize]) -> Vec<(String, f64)> {
        let v = unit(v);
        let mut scored: Vec<(String, f64)> = (0..self.len())
            .filter(|i| !exclude.contains(i))
            .map(|i| (self.names[i].clone(), dot(&v, &self.unit(i))))
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        scored.truncate(n);
        scored
    }

    /// The `n` concepts nearest `concept` (table 2), itself left out.
    pub fn nearest(&self, concept: &str, n: usize) -> Result<Neighbours, MetricError> {
        let i = self.find(concept)?;
        Ok(Neighbours { query: self.names[i].clone(), neighbours: self.nearest_to(&self.vectors[i], n, &[i]) })
    }

    /// Vector arithmetic (table 3): `grass - green + blue` sums the normalised vectors with
    /// their signs and returns the `n` concepts nearest the sum, the terms left out.
    pub fn arith(&self, expression: &str, n: usize) -> Result<Neighbours, MetricError> {
        let terms = self.parse(expression)?;
        let mut sum = vec![0.0; self.dims()];
        for (sign, i) in &terms {
            for (s, x) in sum.iter_mut().zip(self.unit(*i)) {
                *s += sign * x;
            }
        }
        let used: Vec<usize> = terms.iter().map(|t| t.1).collect();
        Ok(Neighbours { query: expression.trim().to_owned(), neighbours: self.nearest_to(&sum, n, &used) })
    }

    /// Parses `[-] concept (+|- concept)*` into signed concept indices. A `-` between two
    /// letters belongs to the name when the joined name is a concept (`t-shirt`).
    pub fn parse(&self, expression: &str) -> Result<Vec<(f64, usize)>, MetricError> {
        let bad = |why: String| {
            MetricError::Invalid(format!(
                "cannot read `{expression}`: {why}; write concepts joined by + and -, e.g. `grass - green + blue`"
            ))
        };
        if expression.trim().is_empty() {
            return Err(bad("it is empty".into()));
        }
        // (sign, text) pieces split at every operator.
        let mut pieces: Vec<(char, String)> = vec![('+', String::new())];
        for ch in expression.chars() {
            if ch == '+' || ch == '-' {
                pieces.push((ch, String::new()));
            } else {
                pieces.last_mut().expect("one piece").1.push(ch);
            }
        }
        if pieces[0].1.trim().is_empty() && pieces.len() > 1 {
            let (op, text) = pieces.remove(1);
            pieces[0] = (op, text);
        }
        let mut terms: Vec<(char, String)> = Vec::new();
        for (op, text) in pieces {
            if let Some(last) = terms.last_mut() {
                let joined = format!("{}-{}", last.1, text);
                let hyphen =
                    op == '-' && !last.1.ends_with(char::is_whitespace) && !text.starts_with(char::is_whitespace);
                if hyphen && !last.1.is_empty() && !text.is_empty() && self.find(joined.trim()).is_ok() {
                    last.1 = joined;
                    continue;
                }
            }
            terms.push((op, text));
        }
        let mut out = Vec::new();
        for (op, text) in terms {
            let name = text.trim();
            if name.is_empty() {
                return Err(bad(format!("`{op}` has no concept after it")));
            }
            let index = self.find(name).map_err(|e| bad(e.to_string().replace("invalid metric input: ", "")))?;
            out.push((if op == '-' { -1.0 } else { 1.0 }, index));
        }
        Ok(out)
    }

    /// `d(W) = W' W'ᵀ` over the concepts `indices`: their cosines, pairwise.
    fn cosines(&self, indices: &[usize]) -> Vec<Vec<f64>> {
        let units: Vec<Vec<f64>> = indices.iter().map(|&i| self.unit(i)).collect();
        units.iter().map(|a| units.iter().map(|b| dot(a, b)).collect()).collect()
    }

    /// `D_ij` of sec. 5.3 between this space and `other` over the concepts both name (in
    /// this embedding's order); the spaces may differ in K (two layers, two models).
    pub fn distance(&self, other: &ConceptEmbedding) -> Result<EmbeddingDistance, MetricError> {
        let shared: Vec<(usize, usize)> = (0..self.len())
            .filter_map(|i| other.names.iter().position(|n| *n == self.names[i]).map(|j| (i, j)))
            .collect();
        if shared.len() < 2 {
            return Err(MetricError::Invalid(format!(
                "the two embeddings share {} concept(s); D_ij needs at least 2 in both. The first has: {}; the second has: {}",
                shared.len(),
                self.names.join(", "),
                other.names.join(", ")
            )));
        }
        let (mine, theirs): (Vec<usize>, Vec<usize>) = shared.iter().copied().unzip();
        let (a, b) = (self.cosines(&mine), other.cosines(&theirs));
        let per_concept: Vec<f64> =
            a.iter().zip(&b).map(|(ra, rb)| ra.iter().zip(rb).map(|(x, y)| (x - y).powi(2)).sum()).collect();
        Ok(EmbeddingDistance {
            concepts: mine.iter().map(|&i| self.names[i].clone()).collect(),
            total: per_concept.iter().sum(),
            per_concept,
        })
    }
}

/// `D_ij` between every pair of named embedding spaces (fig. 10, left), as a heatmap; each
/// pair over the concepts both share.
pub fn distance_heatmap(spaces: &[(&str, &ConceptEmbedding)]) -> Result<Heatmap, MetricError> {
    let mut rows = Vec::new();
    for (_, a) in spaces {
        let row: Result<Vec<f64>, MetricError> = spaces.iter().map(|(_, b)| Ok(a.distance(b)?.total)).collect();
        rows.push(row?);
    }
    let names: Vec<String> = spaces.iter().map(|(n, _)| n.to_string()).collect();
    Ok(Heatmap::new("distance between embedding spaces (D_ij)", rows).row_names(names.clone()).col_names(names))
}

impl EmbeddingDistance {
    /// The mean `D_ij,c` over the concepts of each category (fig. 10, right), categories in
    /// order of first appearance; names without a category count as `concept`.
    pub fn by_category(&self) -> Vec<(String, f64)> {
        let mut groups: Vec<(String, f64, usize)> = Vec::new();
        for (name, d) in self.concepts.iter().zip(&self.per_concept) {
            let category = name.split_once(':').map_or("concept", |(c, _)| c);
            match groups.iter_mut().find(|g| g.0 == category) {
                Some(g) => (g.1, g.2) = (g.1 + d, g.2 + 1),
                None => groups.push((category.to_owned(), *d, 1)),
            }
        }
        groups.into_iter().map(|(c, sum, n)| (c, sum / n as f64)).collect()
    }
}

impl Render for Neighbours {
    fn render(&self) -> Output {
        let text: Vec<String> = std::iter::once(format!("nearest to {}:", self.query))
            .chain(self.neighbours.iter().map(|(n, c)| format!("  {n} ({c:.2})")))
            .collect();
        let rows: String =
            self.neighbours.iter().map(|(n, c)| format!("<tr><td>{n}</td><td>{c:.3}</td></tr>")).collect();
        Output::html(format!("<table><tr><th>nearest to {}</th><th>cos</th></tr>{rows}</table>", self.query))
            .and(Output::text(text.join("\n")))
    }
}

impl Render for EmbeddingDistance {
    fn render(&self) -> Output {
        let head = format!("D_ij = {:.3} over {} shared concepts", self.total, self.concepts.len());
        let categories = self.by_category();
        let text: Vec<String> = std::iter::once(head.clone())
            .chain(categories.iter().map(|(c, d)| format!("  {c}: mean D_ij,c {d:.3}")))
            .collect();
        let rows: String = categories.iter().map(|(c, d)| format!("<tr><td>{c}</td><td>{d:.3}</td></tr>")).collect();
        Output::html(format!(
            "<p>{head}</p><table><tr><th>category</th><th>mean D<sub>ij,c</sub></th></tr>{rows}</table>"
        ))
        .and(Output::text(text.join("\n")))
    }
}
