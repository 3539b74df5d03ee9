//! Submitted forms as ordered pairs: the migration wizard repeats fields (`object`,
//! `rename`) whose order matters, which a struct-shaped form cannot express.

/// The fields of an `application/x-www-form-urlencoded` body, in order.
pub struct Fields(Vec<(String, String)>);

impl Fields {
    pub fn parse(body: &[u8]) -> Self {
        Self(serde_urlencoded::from_bytes(body).unwrap_or_default())
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `name`, trimmed, or "".
    pub fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or_default().trim().to_string()
    }

    /// Every value of `name`, in order.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}
