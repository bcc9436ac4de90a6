//! "Did you mean": the closest of the allowed names to a wrong one, for every error that
//! lists what is allowed (commands, flags, zoo models, concepts).

/// The closest name, if it is close enough to be a likely typo.
pub fn closest<'a>(wrong: &str, names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    names
        .map(|n| (strsim::jaro_winkler(wrong, n), n))
        .filter(|(score, _)| *score > 0.75)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, n)| n)
}
