//! What becomes of a flag that another version of a backend had and the target version lacks.

/// The flags, each with its values, that stand for a translated flag.
pub type Replacements = Vec<(String, Vec<String>)>;

/// How a flag removed from (or not yet in) the target version is carried over.
#[derive(Debug, Clone, Copy)]
pub enum Translation {
    /// Same meaning under another name (`--name`, or `--name.key` for a key of a JSON flag).
    Rename(&'static str),
    /// Gone, with no effect on what the target version runs; dropped with this reason.
    Drop(&'static str),
    /// Gone, and its effect cannot be carried over: refused with this advice.
    Refuse(&'static str),
    /// Rewritten by a function of the values given: the flags (with their values) that say the
    /// same in the target version. An empty list means the value is the target's default.
    Hook(fn(&[String]) -> Replacements),
}

impl Translation {
    /// The flags (with values) that replace a flag given `values`; `Err` carries the reason a
    /// [`Translation::Drop`] or [`Translation::Refuse`] gives.
    pub fn apply(&self, values: &[String]) -> Result<Replacements, Removed> {
        match self {
            Translation::Rename(target) => Ok(vec![(target.to_string(), values.to_vec())]),
            Translation::Drop(why) => Err(Removed::Dropped(why)),
            Translation::Refuse(why) => Err(Removed::Refused(why)),
            Translation::Hook(rewrite) => Ok(rewrite(values)),
        }
    }
}

/// A translated flag that has no replacement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removed {
    /// Dropped without effect, for this reason.
    Dropped(&'static str),
    /// Refused, with this advice.
    Refused(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(values: &[String]) -> Replacements {
        vec![("--capture-size".to_string(), values.to_vec())]
    }

    #[test]
    fn each_translation_says_what_replaces_the_flag() {
        let values = vec!["256".to_string()];
        let renamed = Translation::Rename("--new").apply(&values).unwrap();
        assert_eq!(renamed, [("--new".to_string(), values.clone())]);
        let hooked = Translation::Hook(sizes).apply(&values).unwrap();
        assert_eq!(hooked[0].0, "--capture-size");
        assert_eq!(
            Translation::Drop("gone").apply(&values),
            Err(Removed::Dropped("gone"))
        );
        assert_eq!(
            Translation::Refuse("use X").apply(&values),
            Err(Removed::Refused("use X"))
        );
    }
}
