//! The proto comments, from the descriptor set's source info: the
//! document's summaries, descriptions, and the id forms `ids` reads.

use std::collections::HashMap;

use prost_reflect::DescriptorPool;

/// Proto comments by (file, source path), read once from the source info.
pub(crate) struct Comments(HashMap<(String, Vec<i32>), String>);

impl Comments {
    pub(crate) fn new(pool: &DescriptorPool) -> Self {
        let mut map = HashMap::new();
        for file in pool.files() {
            let Some(info) = &file.file_descriptor_proto().source_code_info else { continue };
            for location in &info.location {
                let text = location.leading_comments.as_deref().or(location.trailing_comments.as_deref()).map(clean_comment);
                if let Some(text) = text.filter(|t| !t.is_empty()) {
                    map.insert((file.name().to_owned(), location.path.clone()), text);
                }
            }
        }
        Self(map)
    }

    /// The comment of the element at `path` in `file`, if any.
    pub(crate) fn get(&self, file: &str, path: &[i32]) -> Option<&str> {
        self.0.get(&(file.to_owned(), path.to_vec())).map(String::as_str)
    }
}

/// Strips the one leading space protoc leaves on each line; keeps paragraphs.
fn clean_comment(raw: &str) -> String {
    raw.lines().map(|l| l.strip_prefix(' ').unwrap_or(l).trim_end()).collect::<Vec<_>>().join("\n").trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_lose_the_protoc_indent_but_keep_paragraphs() {
        assert_eq!(clean_comment(" Gets a customer.\n\n Fails with NOT_FOUND.\n"), "Gets a customer.\n\nFails with NOT_FOUND.");
    }
}
