//! Synonyms: groups of words that find each other (`tv` ↔ `television`).
//!
//! The file format is one group per line, words or phrases separated by
//! commas; `#` starts a comment. A file `synonyms.txt` in the data directory
//! replaces the default set below.

use std::collections::HashMap;
use std::path::Path;

use super::schema::plain_words;

/// The built-in groups.
const DEFAULT: &str = "\
tv, television
laptop, notebook
phone, mobile, smartphone, cellphone
headphones, earphones, headset
sofa, couch
fridge, refrigerator
sneakers, trainers
pants, trousers
tee, tshirt
bike, bicycle
cellular, mobile
hoodie, sweatshirt
couch, settee
";

/// Each word → the phrases (as plain words) it also finds.
#[derive(Debug, Clone, Default)]
pub struct Synonyms {
    map: HashMap<String, Vec<Vec<String>>>,
}

impl Synonyms {
    /// The default set, or `synonyms.txt` under `data_dir` if present.
    pub fn load(data_dir: &Path) -> std::io::Result<Synonyms> {
        let path = data_dir.join("synonyms.txt");
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Synonyms::parse(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Synonyms::parse(DEFAULT)),
            Err(e) => Err(e),
        }
    }

    /// Parses the file format.
    pub fn parse(text: &str) -> Synonyms {
        let mut map: HashMap<String, Vec<Vec<String>>> = HashMap::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let phrases: Vec<Vec<String>> = line
                .split(',')
                .map(plain_words)
                .filter(|words| !words.is_empty())
                .collect();
            for phrase in &phrases {
                // Only one-word entries are looked up (a query is matched
                // word by word); any phrase can be what they find.
                let [word] = phrase.as_slice() else { continue };
                let others = map.entry(word.clone()).or_default();
                for other in &phrases {
                    if other != phrase && !others.contains(other) {
                        others.push(other.clone());
                    }
                }
            }
        }
        Synonyms { map }
    }

    /// What `word` also finds.
    pub fn of(&self, word: &str) -> &[Vec<String>] {
        self.map.get(word).map(Vec::as_slice).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_symmetric_and_merge_across_lines() {
        let synonyms = Synonyms::parse(DEFAULT);
        assert_eq!(synonyms.of("tv"), [vec!["television".to_owned()]]);
        assert_eq!(synonyms.of("television"), [vec!["tv".to_owned()]]);
        assert!(synonyms.of("mobile").contains(&vec!["cellular".to_owned()]));
        assert!(synonyms.of("mobile").contains(&vec!["phone".to_owned()]));
        let custom = Synonyms::parse("# comment\nflat screen, TV\n");
        assert_eq!(
            custom.of("tv"),
            [vec!["flat".to_owned(), "screen".to_owned()]]
        );
        assert!(custom.of("flat").is_empty());
    }
}
