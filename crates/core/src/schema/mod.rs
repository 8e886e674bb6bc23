//! The collection schema model: collections, their typed fields, indexes and access rules.
//!
//! A [`Collection`] is plain data, serialised as JSON both in API responses and in migration
//! files, so one definition moves unchanged between SQLite and PostgreSQL. Input is validated
//! here ([`definition`] for schemas, [`input`] for record bodies), never in the store.

pub mod definition;
pub mod input;
mod names;

use serde::{Deserialize, Serialize};

pub use names::{
    ACCOUNTS_COLLECTION, NAME_PATTERN, NAME_RULE, RESERVED_COLLECTION_PREFIXES, is_valid_name,
    reserved_collection_name,
};

/// System fields every record has.
pub const SYSTEM_FIELDS: &[&str] = &["id", "created", "updated"];
/// Names no field may take (system fields plus response keys).
pub const RESERVED_FIELD_NAMES: &[&str] = &["id", "created", "updated", "expand"];

/// A typed table exposed over the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Collection {
    /// Stable id (`c` + 12 hex), used to name indexes so renames keep them.
    pub id: String,
    pub name: String,
    pub fields: Vec<Field>,
    #[serde(default)]
    pub indexes: Vec<Vec<String>>,
    #[serde(default)]
    pub rules: Rules,
    pub created: String,
    pub updated: String,
    /// Set when a pipeline maintains the table (`expose = true` models): the collection is
    /// read-only over the API and changes only when the pipeline runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<String>,
    /// Whether the table has the system columns every record has (`id`, `created`,
    /// `updated`). Always true for collections; false only for the view the checker gets of
    /// a warehouse table read through `/api/tables`, whose columns are the model's own.
    #[serde(skip, default = "system_columns")]
    pub system_columns: bool,
}

fn system_columns() -> bool {
    true
}

impl Collection {
    /// The field called `name`, if any (system fields are not [`Field`]s).
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The field with stable id `id`.
    pub fn field_by_id(&self, id: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.id == id)
    }

    /// The type of a column, system fields included.
    pub fn column_type(&self, name: &str) -> Option<FieldType> {
        match name {
            "id" | "created" | "updated" if self.system_columns => Some(if name == "id" {
                FieldType::Text
            } else {
                FieldType::Datetime
            }),
            _ => self.field(name).map(|f| f.kind),
        }
    }
}

/// One user-defined field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Field {
    /// Stable id (`f` + 8 hex): a PATCH that keeps the id but changes the name is a rename.
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: FieldType,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub unique: bool,
    #[serde(default)]
    pub default: Option<serde_json::Value>,
    #[serde(default)]
    pub options: FieldOptions,
}

/// Field types (API.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    Text,
    Integer,
    Number,
    Bool,
    Datetime,
    Json,
    Email,
    Url,
    Select,
    Relation,
}

impl FieldType {
    /// All types, for messages.
    pub const ALL: &'static [&'static str] = &[
        "text", "integer", "number", "bool", "datetime", "json", "email", "url", "select",
        "relation",
    ];

    /// Parses a type name.
    pub fn parse(name: &str) -> Option<FieldType> {
        serde_json::from_value(serde_json::Value::String(name.to_string())).ok()
    }

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::Integer => "integer",
            FieldType::Number => "number",
            FieldType::Bool => "bool",
            FieldType::Datetime => "datetime",
            FieldType::Json => "json",
            FieldType::Email => "email",
            FieldType::Url => "url",
            FieldType::Select => "select",
            FieldType::Relation => "relation",
        }
    }

    /// Whether values are stored as text (and compared as strings).
    pub fn is_textual(self) -> bool {
        matches!(
            self,
            FieldType::Text
                | FieldType::Email
                | FieldType::Url
                | FieldType::Select
                | FieldType::Relation
                | FieldType::Datetime
        )
    }
}

/// Type-specific options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldOptions {
    /// `select`: the allowed values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
    /// `relation`: the target collection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection: Option<String>,
    /// `relation`: delete referencing records with the target (otherwise deleting a
    /// referenced record is refused).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cascade_delete: bool,
    /// `integer`/`number`: smallest value; `text`: shortest length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// `integer`/`number`: largest value; `text`: longest length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

/// Access rules: `None` = admins only, `""` = anyone, otherwise a filter expression.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    #[serde(default)]
    pub list: Option<String>,
    #[serde(default)]
    pub view: Option<String>,
    #[serde(default)]
    pub create: Option<String>,
    #[serde(default)]
    pub update: Option<String>,
    #[serde(default)]
    pub delete: Option<String>,
}

impl Field {
    /// A plain optional field of `kind` with a new id.
    pub fn new(name: &str, kind: FieldType) -> Field {
        Field {
            id: short_id('f', 8),
            name: name.to_string(),
            kind,
            required: false,
            unique: false,
            default: None,
            options: FieldOptions::default(),
        }
    }
}

/// A new collection id.
pub fn new_collection_id() -> String {
    short_id('c', 12)
}

/// A short random id with a one-letter prefix.
pub(crate) fn short_id(prefix: char, hex_len: usize) -> String {
    let hex = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}{}", &hex[..hex_len])
}
