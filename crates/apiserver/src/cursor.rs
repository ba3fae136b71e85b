//! One schema cursor type for the patch algorithms, whichever schema a resource has: the release's
//! OpenAPI definitions for built-in kinds, the CRD's openAPIV3Schema for custom resources.

use rotor_openapi::{Cursor, CustomCursor};
use rotor_patch::{FieldInfo, SchemaCursor};

#[derive(Clone)]
pub enum AnyCursor {
    Builtin(Cursor),
    Custom(CustomCursor),
}

impl SchemaCursor for AnyCursor {
    fn field(&self, name: &str) -> Option<Self> {
        match self {
            AnyCursor::Builtin(c) => c.field(name).map(AnyCursor::Builtin),
            AnyCursor::Custom(c) => c.field(name).map(AnyCursor::Custom),
        }
    }
    fn items(&self) -> Option<Self> {
        match self {
            AnyCursor::Builtin(c) => c.items().map(AnyCursor::Builtin),
            AnyCursor::Custom(c) => c.items().map(AnyCursor::Custom),
        }
    }
    fn info(&self) -> FieldInfo {
        match self {
            AnyCursor::Builtin(c) => c.info(),
            AnyCursor::Custom(c) => c.info(),
        }
    }
}
