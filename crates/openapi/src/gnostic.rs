//! The Swagger 2.0 document as gnostic's OpenAPI v2 protobuf (package `openapi.v2`, the messages
//! of google/gnostic's `openapiv2/OpenAPIv2.proto`): what kubectl asks `/openapi/v2` for, with
//! `Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf`, and turns into models
//! with kube-openapi's `proto.NewOpenAPIData` for client-side validation.
//!
//! The messages are declared by hand with the field numbers of that file, for the parts of a
//! document rotor publishes: `swagger`, `info`, `paths` (operations, their parameters and
//! responses: kubectl's v2 query-parameter verifier and `GetConsumes` read the PATCH operations
//! and their `x-kubernetes-group-version-kind`) and `definitions` with every JSON-Schema keyword
//! a Swagger 2.0 schema has. A vendor extension (`x-…`) is a `NamedAny` whose `Any.yaml` holds
//! the value as JSON text: JSON is YAML, and a double-quoted JSON string cannot be retyped by a
//! YAML 1.1 reader (go-yaml v2, which kube-openapi uses, reads a bare `y` or `on` as a bool).
//! Keywords Swagger 2.0 has no field for (`nullable`, `oneOf`, …) have no place in the message,
//! as in gnostic; custom schemas have them removed before (`documents.rs`, as kube-apiserver
//! does for CRDs).

use prost::Message;
use serde_json::{Map, Value};

#[derive(Clone, PartialEq, Message)]
pub struct Any {
    #[prost(string, tag = "2")]
    pub yaml: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct NamedAny {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<Any>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Info {
    #[prost(string, tag = "1")]
    pub title: String,
    #[prost(string, tag = "2")]
    pub version: String,
    #[prost(string, tag = "3")]
    pub description: String,
    #[prost(message, repeated, tag = "7")]
    pub vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TypeItem {
    #[prost(string, repeated, tag = "1")]
    pub value: Vec<String>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ItemsItem {
    #[prost(message, repeated, tag = "1")]
    pub schema: Vec<Schema>,
}

#[derive(Clone, PartialEq, Message)]
pub struct NamedSchema {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<Schema>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Properties {
    #[prost(message, repeated, tag = "1")]
    pub additional_properties: Vec<NamedSchema>,
}

#[derive(Clone, PartialEq, Message)]
pub struct AdditionalPropertiesItem {
    #[prost(oneof = "additional_properties_item::Oneof", tags = "1, 2")]
    pub oneof: Option<additional_properties_item::Oneof>,
}

pub mod additional_properties_item {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Oneof {
        #[prost(message, tag = "1")]
        Schema(Box<super::Schema>),
        #[prost(bool, tag = "2")]
        Boolean(bool),
    }
}

#[derive(Clone, PartialEq, Message)]
pub struct Schema {
    #[prost(string, tag = "1")]
    pub xref: String,
    #[prost(string, tag = "2")]
    pub format: String,
    #[prost(string, tag = "3")]
    pub title: String,
    #[prost(string, tag = "4")]
    pub description: String,
    #[prost(message, optional, tag = "5")]
    pub default: Option<Any>,
    #[prost(double, tag = "6")]
    pub multiple_of: f64,
    #[prost(double, tag = "7")]
    pub maximum: f64,
    #[prost(bool, tag = "8")]
    pub exclusive_maximum: bool,
    #[prost(double, tag = "9")]
    pub minimum: f64,
    #[prost(bool, tag = "10")]
    pub exclusive_minimum: bool,
    #[prost(int64, tag = "11")]
    pub max_length: i64,
    #[prost(int64, tag = "12")]
    pub min_length: i64,
    #[prost(string, tag = "13")]
    pub pattern: String,
    #[prost(int64, tag = "14")]
    pub max_items: i64,
    #[prost(int64, tag = "15")]
    pub min_items: i64,
    #[prost(bool, tag = "16")]
    pub unique_items: bool,
    #[prost(int64, tag = "17")]
    pub max_properties: i64,
    #[prost(int64, tag = "18")]
    pub min_properties: i64,
    #[prost(string, repeated, tag = "19")]
    pub required: Vec<String>,
    #[prost(message, repeated, tag = "20")]
    pub r#enum: Vec<Any>,
    #[prost(message, optional, boxed, tag = "21")]
    pub additional_properties: Option<Box<AdditionalPropertiesItem>>,
    #[prost(message, optional, tag = "22")]
    pub r#type: Option<TypeItem>,
    #[prost(message, optional, tag = "23")]
    pub items: Option<ItemsItem>,
    #[prost(message, repeated, tag = "24")]
    pub all_of: Vec<Schema>,
    #[prost(message, optional, tag = "25")]
    pub properties: Option<Properties>,
    #[prost(string, tag = "26")]
    pub discriminator: String,
    #[prost(bool, tag = "27")]
    pub read_only: bool,
    #[prost(message, optional, tag = "30")]
    pub example: Option<Any>,
    #[prost(message, repeated, tag = "31")]
    pub vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, Message)]
pub struct JsonReference {
    #[prost(string, tag = "1")]
    pub xref: String,
    #[prost(string, tag = "2")]
    pub description: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct BodyParameter {
    #[prost(string, tag = "1")]
    pub description: String,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, tag = "3")]
    pub r#in: String,
    #[prost(bool, tag = "4")]
    pub required: bool,
    #[prost(message, optional, boxed, tag = "5")]
    pub schema: Option<Box<Schema>>,
    #[prost(message, repeated, tag = "6")]
    pub vendor_extension: Vec<NamedAny>,
}

/// The fields of a non-body parameter that rotor's documents can carry (a parameter's `items`
/// and numeric bounds are never among them). The four sub-schemas share them but number them
/// differently: a header or path parameter has no `allowEmptyValue`, and what follows sits one
/// lower.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct SimpleParameter {
    pub required: bool,
    pub r#in: String,
    pub description: String,
    pub name: String,
    pub allow_empty_value: bool,
    pub r#type: String,
    pub format: String,
    pub collection_format: String,
    pub default: Option<Any>,
    pub unique_items: bool,
    pub r#enum: Vec<Any>,
    pub vendor_extension: Vec<NamedAny>,
}

/// Declares one non-body parameter message with its tags for the `SimpleParameter` fields:
/// `allow` for the `allowEmptyValue` only query and formData parameters have.
macro_rules! sub_schema {
    ($name:ident, allow = $allow:literal, $($tag:literal),+) => {
        sub_schema!(@impl $name, [$allow], $($tag),+);
    };
    ($name:ident, $($tag:literal),+) => {
        sub_schema!(@impl $name, [], $($tag),+);
    };
    (@impl $name:ident, [$($allow:literal)?], $ty:literal, $format:literal, $collection:literal, $default:literal, $unique:literal, $enum:literal, $ext:literal) => {
        #[derive(Clone, PartialEq, Message)]
        pub struct $name {
            #[prost(bool, tag = "1")]
            pub required: bool,
            #[prost(string, tag = "2")]
            pub r#in: String,
            #[prost(string, tag = "3")]
            pub description: String,
            #[prost(string, tag = "4")]
            pub name: String,
            $(
            #[prost(bool, tag = $allow)]
            pub allow_empty_value: bool,
            )?
            #[prost(string, tag = $ty)]
            pub r#type: String,
            #[prost(string, tag = $format)]
            pub format: String,
            #[prost(string, tag = $collection)]
            pub collection_format: String,
            #[prost(message, optional, tag = $default)]
            pub default: Option<Any>,
            #[prost(bool, tag = $unique)]
            pub unique_items: bool,
            #[prost(message, repeated, tag = $enum)]
            pub r#enum: Vec<Any>,
            #[prost(message, repeated, tag = $ext)]
            pub vendor_extension: Vec<NamedAny>,
        }

        impl From<SimpleParameter> for $name {
            fn from(p: SimpleParameter) -> Self {
                $name {
                    required: p.required,
                    r#in: p.r#in,
                    description: p.description,
                    name: p.name,
                    $(allow_empty_value: sub_schema!(@field p.allow_empty_value, $allow),)?
                    r#type: p.r#type,
                    format: p.format,
                    collection_format: p.collection_format,
                    default: p.default,
                    unique_items: p.unique_items,
                    r#enum: p.r#enum,
                    vendor_extension: p.vendor_extension,
                }
            }
        }

        impl From<$name> for SimpleParameter {
            fn from(p: $name) -> Self {
                let allow_empty_value = sub_schema!(@allow p [$($allow)?]);
                SimpleParameter {
                    required: p.required,
                    r#in: p.r#in,
                    description: p.description,
                    name: p.name,
                    allow_empty_value,
                    r#type: p.r#type,
                    format: p.format,
                    collection_format: p.collection_format,
                    default: p.default,
                    unique_items: p.unique_items,
                    r#enum: p.r#enum,
                    vendor_extension: p.vendor_extension,
                }
            }
        }
    };
    (@field $e:expr, $_tag:tt) => {
        $e
    };
    (@allow $p:ident [$_tag:literal]) => {
        $p.allow_empty_value
    };
    (@allow $p:ident []) => {
        false
    };
}

sub_schema!(
    QueryParameterSubSchema,
    allow = "5",
    "6",
    "7",
    "9",
    "10",
    "20",
    "21",
    "23"
);
sub_schema!(
    FormDataParameterSubSchema,
    allow = "5",
    "6",
    "7",
    "9",
    "10",
    "20",
    "21",
    "23"
);
sub_schema!(
    HeaderParameterSubSchema,
    "5",
    "6",
    "8",
    "9",
    "19",
    "20",
    "22"
);
sub_schema!(PathParameterSubSchema, "5", "6", "8", "9", "19", "20", "22");

#[derive(Clone, PartialEq, Message)]
pub struct NonBodyParameter {
    #[prost(oneof = "non_body_parameter::Oneof", tags = "1, 2, 3, 4")]
    pub oneof: Option<non_body_parameter::Oneof>,
}

pub mod non_body_parameter {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Oneof {
        #[prost(message, tag = "1")]
        Header(super::HeaderParameterSubSchema),
        #[prost(message, tag = "2")]
        FormData(super::FormDataParameterSubSchema),
        #[prost(message, tag = "3")]
        Query(super::QueryParameterSubSchema),
        #[prost(message, tag = "4")]
        Path(super::PathParameterSubSchema),
    }
}

#[derive(Clone, PartialEq, Message)]
pub struct Parameter {
    #[prost(oneof = "parameter::Oneof", tags = "1, 2")]
    pub oneof: Option<parameter::Oneof>,
}

pub mod parameter {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Oneof {
        #[prost(message, tag = "1")]
        Body(super::BodyParameter),
        #[prost(message, tag = "2")]
        NonBody(super::NonBodyParameter),
    }
}

#[derive(Clone, PartialEq, Message)]
pub struct ParametersItem {
    #[prost(oneof = "parameters_item::Oneof", tags = "1, 2")]
    pub oneof: Option<parameters_item::Oneof>,
}

pub mod parameters_item {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Oneof {
        #[prost(message, tag = "1")]
        Parameter(super::Parameter),
        #[prost(message, tag = "2")]
        JsonReference(super::JsonReference),
    }
}

#[derive(Clone, PartialEq, Message)]
pub struct SchemaItem {
    /// Only the `schema` case (1): rotor's responses never carry a `FileSchema`.
    #[prost(message, optional, boxed, tag = "1")]
    pub schema: Option<Box<Schema>>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Response {
    #[prost(string, tag = "1")]
    pub description: String,
    #[prost(message, optional, tag = "2")]
    pub schema: Option<SchemaItem>,
    #[prost(message, repeated, tag = "5")]
    pub vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ResponseValue {
    #[prost(oneof = "response_value::Oneof", tags = "1, 2")]
    pub oneof: Option<response_value::Oneof>,
}

pub mod response_value {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Oneof {
        #[prost(message, tag = "1")]
        Response(super::Response),
        #[prost(message, tag = "2")]
        JsonReference(super::JsonReference),
    }
}

#[derive(Clone, PartialEq, Message)]
pub struct NamedResponseValue {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<ResponseValue>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Responses {
    #[prost(message, repeated, tag = "1")]
    pub response_code: Vec<NamedResponseValue>,
    #[prost(message, repeated, tag = "2")]
    pub vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Operation {
    #[prost(string, repeated, tag = "1")]
    pub tags: Vec<String>,
    #[prost(string, tag = "2")]
    pub summary: String,
    #[prost(string, tag = "3")]
    pub description: String,
    #[prost(string, tag = "5")]
    pub operation_id: String,
    #[prost(string, repeated, tag = "6")]
    pub produces: Vec<String>,
    #[prost(string, repeated, tag = "7")]
    pub consumes: Vec<String>,
    #[prost(message, repeated, tag = "8")]
    pub parameters: Vec<ParametersItem>,
    #[prost(message, optional, tag = "9")]
    pub responses: Option<Responses>,
    #[prost(string, repeated, tag = "10")]
    pub schemes: Vec<String>,
    #[prost(bool, tag = "11")]
    pub deprecated: bool,
    #[prost(message, repeated, tag = "13")]
    pub vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, Message)]
pub struct PathItem {
    #[prost(string, tag = "1")]
    pub xref: String,
    #[prost(message, optional, tag = "2")]
    pub get: Option<Operation>,
    #[prost(message, optional, tag = "3")]
    pub put: Option<Operation>,
    #[prost(message, optional, tag = "4")]
    pub post: Option<Operation>,
    #[prost(message, optional, tag = "5")]
    pub delete: Option<Operation>,
    #[prost(message, optional, tag = "6")]
    pub options: Option<Operation>,
    #[prost(message, optional, tag = "7")]
    pub head: Option<Operation>,
    #[prost(message, optional, tag = "8")]
    pub patch: Option<Operation>,
    #[prost(message, repeated, tag = "9")]
    pub parameters: Vec<ParametersItem>,
    #[prost(message, repeated, tag = "10")]
    pub vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, Message)]
pub struct NamedPathItem {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<PathItem>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Paths {
    #[prost(message, repeated, tag = "1")]
    pub vendor_extension: Vec<NamedAny>,
    #[prost(message, repeated, tag = "2")]
    pub path: Vec<NamedPathItem>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Definitions {
    #[prost(message, repeated, tag = "1")]
    pub additional_properties: Vec<NamedSchema>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Document {
    #[prost(string, tag = "1")]
    pub swagger: String,
    #[prost(message, optional, tag = "2")]
    pub info: Option<Info>,
    #[prost(string, tag = "3")]
    pub host: String,
    #[prost(string, tag = "4")]
    pub base_path: String,
    #[prost(string, repeated, tag = "5")]
    pub schemes: Vec<String>,
    #[prost(string, repeated, tag = "6")]
    pub consumes: Vec<String>,
    #[prost(string, repeated, tag = "7")]
    pub produces: Vec<String>,
    #[prost(message, optional, tag = "8")]
    pub paths: Option<Paths>,
    #[prost(message, optional, tag = "9")]
    pub definitions: Option<Definitions>,
    #[prost(message, repeated, tag = "16")]
    pub vendor_extension: Vec<NamedAny>,
}

/// Field numbers of `Document` that `encode_document` writes itself.
pub const DOCUMENT_DEFINITIONS: u32 = 9;
pub const DEFINITIONS_ENTRY: u32 = 1;

// ---- JSON → messages ----

fn string(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    }
}

fn int(v: &Value) -> i64 {
    v.as_i64()
        .or_else(|| v.as_f64().map(|f| f as i64))
        .unwrap_or_default()
}

/// A value as gnostic's `Any`: its YAML text (here JSON, which is YAML).
pub fn any(v: &Value) -> Any {
    Any {
        yaml: v.to_string(),
    }
}

fn extension(name: &str, v: &Value) -> NamedAny {
    NamedAny {
        name: name.to_string(),
        value: Some(any(v)),
    }
}

/// The `x-` members of an object, as vendor extensions, in document order.
fn extensions(m: &Map<String, Value>) -> Vec<NamedAny> {
    m.iter()
        .filter(|(k, _)| k.starts_with("x-"))
        .map(|(k, v)| extension(k, v))
        .collect()
}

fn named_schemas(m: &Map<String, Value>) -> Vec<NamedSchema> {
    m.iter()
        .map(|(name, v)| NamedSchema {
            name: name.clone(),
            value: Some(schema(v)),
        })
        .collect()
}

/// One Swagger 2.0 schema object.
pub fn schema(v: &Value) -> Schema {
    let mut s = Schema::default();
    let Some(m) = v.as_object() else {
        return s;
    };
    for (k, x) in m {
        match k.as_str() {
            "$ref" => s.xref = string(x),
            "format" => s.format = string(x),
            "title" => s.title = string(x),
            "description" => s.description = string(x),
            "default" => s.default = Some(any(x)),
            "multipleOf" => s.multiple_of = x.as_f64().unwrap_or_default(),
            "maximum" => s.maximum = x.as_f64().unwrap_or_default(),
            "exclusiveMaximum" => s.exclusive_maximum = x.as_bool().unwrap_or_default(),
            "minimum" => s.minimum = x.as_f64().unwrap_or_default(),
            "exclusiveMinimum" => s.exclusive_minimum = x.as_bool().unwrap_or_default(),
            "maxLength" => s.max_length = int(x),
            "minLength" => s.min_length = int(x),
            "pattern" => s.pattern = string(x),
            "maxItems" => s.max_items = int(x),
            "minItems" => s.min_items = int(x),
            "uniqueItems" => s.unique_items = x.as_bool().unwrap_or_default(),
            "maxProperties" => s.max_properties = int(x),
            "minProperties" => s.min_properties = int(x),
            "required" => s.required = strings(x),
            "enum" => s.r#enum = x.as_array().into_iter().flatten().map(any).collect(),
            "additionalProperties" => {
                let item = match x {
                    Value::Bool(b) => additional_properties_item::Oneof::Boolean(*b),
                    other => additional_properties_item::Oneof::Schema(Box::new(schema(other))),
                };
                s.additional_properties =
                    Some(Box::new(AdditionalPropertiesItem { oneof: Some(item) }));
            }
            "type" => {
                s.r#type = Some(TypeItem { value: strings(x) });
            }
            "items" => {
                let schemas = match x {
                    Value::Array(a) => a.iter().map(schema).collect(),
                    other => vec![schema(other)],
                };
                s.items = Some(ItemsItem { schema: schemas });
            }
            "allOf" => s.all_of = x.as_array().into_iter().flatten().map(schema).collect(),
            "properties" => {
                s.properties = Some(Properties {
                    additional_properties: x.as_object().map(named_schemas).unwrap_or_default(),
                });
            }
            "discriminator" => s.discriminator = string(x),
            "readOnly" => s.read_only = x.as_bool().unwrap_or_default(),
            "example" => s.example = Some(any(x)),
            name if name.starts_with("x-") => s.vendor_extension.push(extension(name, x)),
            // Not a Swagger 2.0 schema keyword: gnostic's Schema has no field for it.
            _ => {}
        }
    }
    s
}

/// A definition as the `Definitions` entry kube-openapi reads.
pub fn named_schema(name: &str, v: &Value) -> NamedSchema {
    NamedSchema {
        name: name.to_string(),
        value: Some(schema(v)),
    }
}

fn parameter(v: &Value) -> ParametersItem {
    let m = v.as_object().cloned().unwrap_or_default();
    let get = |k: &str| m.get(k).cloned().unwrap_or(Value::Null);
    if let Some(r) = m.get("$ref") {
        return ParametersItem {
            oneof: Some(parameters_item::Oneof::JsonReference(JsonReference {
                xref: string(r),
                description: string(&get("description")),
            })),
        };
    }
    let location = string(&get("in"));
    let p = if location == "body" {
        parameter::Oneof::Body(BodyParameter {
            description: string(&get("description")),
            name: string(&get("name")),
            r#in: location,
            required: get("required").as_bool().unwrap_or_default(),
            schema: m.get("schema").map(|s| Box::new(schema(s))),
            vendor_extension: extensions(&m),
        })
    } else {
        let simple = SimpleParameter {
            required: get("required").as_bool().unwrap_or_default(),
            r#in: location.clone(),
            description: string(&get("description")),
            name: string(&get("name")),
            allow_empty_value: get("allowEmptyValue").as_bool().unwrap_or_default(),
            r#type: string(&get("type")),
            format: string(&get("format")),
            collection_format: string(&get("collectionFormat")),
            default: m.get("default").map(any),
            unique_items: get("uniqueItems").as_bool().unwrap_or_default(),
            r#enum: m
                .get("enum")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(any)
                .collect(),
            vendor_extension: extensions(&m),
        };
        let sub = match location.as_str() {
            "header" => non_body_parameter::Oneof::Header(simple.into()),
            "formData" => non_body_parameter::Oneof::FormData(simple.into()),
            "path" => non_body_parameter::Oneof::Path(simple.into()),
            _ => non_body_parameter::Oneof::Query(simple.into()),
        };
        parameter::Oneof::NonBody(NonBodyParameter { oneof: Some(sub) })
    };
    ParametersItem {
        oneof: Some(parameters_item::Oneof::Parameter(Parameter {
            oneof: Some(p),
        })),
    }
}

fn parameters(v: Option<&Value>) -> Vec<ParametersItem> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(parameter)
        .collect()
}

fn responses(v: &Value) -> Responses {
    let m = v.as_object().cloned().unwrap_or_default();
    let response_code = m
        .iter()
        .filter(|(k, _)| !k.starts_with("x-"))
        .map(|(code, r)| {
            let value = match r.get("$ref") {
                Some(reference) => response_value::Oneof::JsonReference(JsonReference {
                    xref: string(reference),
                    description: String::new(),
                }),
                None => response_value::Oneof::Response(Response {
                    description: string(r.get("description").unwrap_or(&Value::Null)),
                    schema: r.get("schema").map(|s| SchemaItem {
                        schema: Some(Box::new(schema(s))),
                    }),
                    vendor_extension: r.as_object().map(extensions).unwrap_or_default(),
                }),
            };
            NamedResponseValue {
                name: code.clone(),
                value: Some(ResponseValue { oneof: Some(value) }),
            }
        })
        .collect();
    Responses {
        response_code,
        vendor_extension: extensions(&m),
    }
}

fn operation(v: &Value) -> Operation {
    let m = v.as_object().cloned().unwrap_or_default();
    let get = |k: &str| m.get(k).cloned().unwrap_or(Value::Null);
    Operation {
        tags: strings(&get("tags")),
        summary: string(&get("summary")),
        description: string(&get("description")),
        operation_id: string(&get("operationId")),
        produces: strings(&get("produces")),
        consumes: strings(&get("consumes")),
        parameters: parameters(m.get("parameters")),
        responses: m.get("responses").map(responses),
        schemes: strings(&get("schemes")),
        deprecated: get("deprecated").as_bool().unwrap_or_default(),
        vendor_extension: extensions(&m),
    }
}

fn path_item(v: &Value) -> PathItem {
    let m = v.as_object().cloned().unwrap_or_default();
    let op = |k: &str| m.get(k).map(operation);
    PathItem {
        xref: string(m.get("$ref").unwrap_or(&Value::Null)),
        get: op("get"),
        put: op("put"),
        post: op("post"),
        delete: op("delete"),
        options: op("options"),
        head: op("head"),
        patch: op("patch"),
        parameters: parameters(m.get("parameters")),
        vendor_extension: extensions(&m),
    }
}

/// A document's `paths` object.
pub fn paths(v: &Map<String, Value>) -> Paths {
    Paths {
        vendor_extension: extensions(v),
        path: v
            .iter()
            .filter(|(k, _)| !k.starts_with("x-"))
            .map(|(name, item)| NamedPathItem {
                name: name.clone(),
                value: Some(path_item(item)),
            })
            .collect(),
    }
}

pub fn info(v: &Value) -> Info {
    let m = v.as_object().cloned().unwrap_or_default();
    Info {
        title: string(m.get("title").unwrap_or(&Value::Null)),
        version: string(m.get("version").unwrap_or(&Value::Null)),
        description: string(m.get("description").unwrap_or(&Value::Null)),
        vendor_extension: extensions(&m),
    }
}

/// Appends one `NamedSchema` as an entry (field 1) of a `Definitions` message.
pub fn encode_definition(name: &str, v: &Value, buf: &mut Vec<u8>) {
    prost::encoding::message::encode(DEFINITIONS_ENTRY, &named_schema(name, v), buf);
}

/// A `Document` with `swagger`, `info` and `paths` from `head`, and `definitions` made of
/// already-encoded `Definitions` entries (so the release's entries are encoded once).
pub fn encode_document(head: &Document, definition_entries: &[&[u8]]) -> Vec<u8> {
    let len: usize = definition_entries.iter().map(|e| e.len()).sum();
    let mut buf = head.encode_to_vec();
    buf.reserve(len + 16);
    prost::encoding::encode_key(
        DOCUMENT_DEFINITIONS,
        prost::encoding::WireType::LengthDelimited,
        &mut buf,
    );
    prost::encoding::encode_varint(len as u64, &mut buf);
    for e in definition_entries {
        buf.extend_from_slice(e);
    }
    buf
}
