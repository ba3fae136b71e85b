//! Just enough XML for the request bodies of AWS's XML APIs (Route 53): elements, their text,
//! their children; attributes, namespaces and mixed content ignored. On xmlparser, the
//! tokenizer the AWS SDK itself uses (already in the tree through it).

/// An element: its local name, its text (concatenated, entities decoded) and its children.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Element {
    pub name: String,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The text of child `name`, trimmed.
    pub fn text_of(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.trim())
    }
}

/// The document's root element, or what is wrong with it.
pub(crate) fn parse(xml: &str) -> Result<Element, String> {
    let mut stack: Vec<Element> = Vec::new();
    for token in xmlparser::Tokenizer::from(xml) {
        match token.map_err(|e| e.to_string())? {
            xmlparser::Token::ElementStart { local, .. } => stack.push(Element {
                name: local.as_str().to_string(),
                ..Element::default()
            }),
            xmlparser::Token::ElementEnd { end, .. } => {
                if matches!(end, xmlparser::ElementEnd::Open) {
                    continue;
                }
                let done = stack.pop().ok_or("an end tag without a start")?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => return Ok(done),
                }
            }
            xmlparser::Token::Text { text } | xmlparser::Token::Cdata { text, .. } => {
                if let Some(open) = stack.last_mut() {
                    open.text.push_str(&unescape(text.as_str()));
                }
            }
            _ => {}
        }
    }
    Err("the document ends before its root element does".into())
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_elements_text_and_children() {
        let doc =
            parse("<?xml version=\"1.0\"?><A xmlns=\"x\"><B>one &amp; two</B><C/><B>3</B></A>")
                .unwrap();
        assert_eq!(doc.name, "A");
        assert_eq!(doc.text_of("B"), Some("one & two"));
        assert_eq!(doc.children_named("B").count(), 2);
        assert!(doc.child("C").is_some());
        assert!(parse("<A><B></A>").is_err());
        assert!(parse("<A>").is_err());
    }
}
