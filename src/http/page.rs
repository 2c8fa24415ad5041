//! Keyset pagination over the API: the `limit` and `cursor` query parameters
//! and the `{items, next_cursor}` page every list endpoint answers.
//!
//! The committed OpenAPI document is a contract for generated clients: each
//! list keeps its own page schema (`EventPage`, `OrderPage`, …) and the
//! `limit` parameter keeps its exact schema and error messages. poem-openapi 5
//! names a generic `#[derive(Object)]` `Page_EventOut`, so `Page<T>` and
//! `Limit` implement its traits by hand to keep the names and the document.

use std::borrow::Cow;

use poem::{Request, RequestBody};
use poem_openapi::{
    error::ParseParamError,
    param::Query,
    registry::{MetaParamIn, MetaSchema, MetaSchemaRef, Registry},
    types::{ToJSON, Type},
    validation::{Maximum, Minimum, Validator, ValidatorMeta},
    ApiExtractor, ApiExtractorType, ExtractParamOptions,
};
use serde_json::Value;
use super::error::ApiError;

/// Page size when the request gives none.
pub const DEFAULT_LIMIT: u32 = 50;
/// Smallest and largest page a request may ask for.
pub const MIN_LIMIT: u32 = 1;
pub const MAX_LIMIT: u32 = 1000;

/// A list endpoint's `limit` query parameter: 1–1000, `DEFAULT_LIMIT` when
/// absent. Declare it as `limit: Limit` with a doc comment; the parameter is
/// named after the argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit(u32);

impl Limit {
    pub fn get(self) -> u32 {
        self.0
    }

    /// The bounds, as the validators that report them (their `Display` is the
    /// error message clients already see).
    fn bounds() -> (Minimum, Maximum) {
        (Minimum::new(f64::from(MIN_LIMIT), false), Maximum::new(f64::from(MAX_LIMIT), false))
    }

    /// Checks a parsed value in the order poem-openapi's
    /// `validator(minimum, maximum)` did: maximum first.
    fn check(value: u32) -> Result<Self, String> {
        let (minimum, maximum) = Self::bounds();
        if !Validator::<u32>::check(&maximum, &value) {
            return Err(format!("verification failed. {maximum}"));
        }
        if !Validator::<u32>::check(&minimum, &value) {
            return Err(format!("verification failed. {minimum}"));
        }
        Ok(Self(value))
    }
}

impl Default for Limit {
    fn default() -> Self {
        Self(DEFAULT_LIMIT)
    }
}

fn default_limit() -> u32 {
    DEFAULT_LIMIT
}

impl<'a> ApiExtractor<'a> for Limit {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::Parameter];
    const PARAM_IS_REQUIRED: bool = false;

    type ParamType = u32;
    type ParamRawType = u32;

    fn param_in() -> Option<MetaParamIn> {
        Some(MetaParamIn::Query)
    }

    fn param_schema_ref() -> Option<MetaSchemaRef> {
        let mut patch = MetaSchema::ANY;
        patch.default = ToJSON::to_json(&DEFAULT_LIMIT);
        let (minimum, maximum) = Self::bounds();
        maximum.update_meta(&mut patch);
        minimum.update_meta(&mut patch);
        Some(<u32 as Type>::schema_ref().merge(patch))
    }

    fn param_raw_type(&self) -> Option<&u32> {
        Some(&self.0)
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        param_opts: ExtractParamOptions<u32>,
    ) -> poem::Result<Self> {
        let name = param_opts.name;
        let opts = ExtractParamOptions {
            default_value: Some(default_limit as fn() -> u32),
            ..param_opts
        };
        // Parsing goes through `Query<u32>` so malformed values get its messages.
        let Query(value) = <Query<u32> as ApiExtractor>::from_request(request, body, opts).await?;
        Self::check(value).map_err(|reason| ParseParamError { name, reason }.into())
    }
}

/// A list endpoint's `cursor`: the key of the last item of the previous page
/// (a UUID for most lists), as `next_cursor` gave it.
pub(crate) fn parse_cursor<C: std::str::FromStr>(cursor: Option<&str>) -> Result<Option<C>, ApiError> {
    match cursor {
        None | Some("") => Ok(None),
        Some(c) => c
            .parse()
            .map(Some)
            .map_err(|_| ApiError::bad_request("invalid_cursor", "cursor is not one this API returned")),
    }
}

/// An item type that is listed in pages, and the name of its page schema.
pub trait PageItem: ToJSON {
    /// The page's schema name in the OpenAPI document, e.g. `EventPage`.
    const PAGE_NAME: &'static str;
    /// The description of `next_cursor` in that schema. Some pages never had
    /// one; adding it would change the committed document.
    const CURSOR_DOC: Option<&'static str> = None;
}

/// The description the pages that document `next_cursor` use.
pub const NEXT_CURSOR_DOC: &str = "Pass as `cursor` for the next page; null on the last page.";

/// One page of a list, newest or lowest key first as the endpoint says;
/// `next_cursor` is null on the last page.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page from the rows and next cursor `db::page::split` returned,
    /// converting each row into its DTO.
    pub fn from_rows<R, C>(rows: Vec<R>, next: Option<C>) -> Self
    where
        R: Into<T>,
        C: ToString,
    {
        Self {
            items: rows.into_iter().map(Into::into).collect(),
            next_cursor: next.map(|c| c.to_string()),
        }
    }
}

impl<T: PageItem> Type for Page<T> {
    const IS_REQUIRED: bool = true;

    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        Cow::Borrowed(T::PAGE_NAME)
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Reference(T::PAGE_NAME.to_owned())
    }

    fn register(registry: &mut Registry) {
        registry.create_schema::<Self, _>(T::PAGE_NAME.to_owned(), |registry| {
            <Vec<T> as Type>::register(registry);
            <Option<String> as Type>::register(registry);
            let mut cursor = MetaSchema::ANY;
            cursor.description = T::CURSOR_DOC;
            MetaSchema {
                title: Some(T::PAGE_NAME.to_owned()),
                required: vec!["items"],
                properties: vec![
                    ("items", <Vec<T> as Type>::schema_ref().merge(MetaSchema::ANY)),
                    ("next_cursor", <Option<String> as Type>::schema_ref().merge(cursor)),
                ],
                ..MetaSchema::new("object")
            }
        })
    }

    fn as_raw_value(&self) -> Option<&Self> {
        Some(self)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl<T: PageItem> ToJSON for Page<T> {
    fn to_json(&self) -> Option<Value> {
        let mut object = serde_json::Map::new();
        if let Some(items) = self.items.to_json() {
            object.insert("items".into(), items);
        }
        if let Some(cursor) = self.next_cursor.to_json() {
            object.insert("next_cursor".into(), cursor);
        }
        Some(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use poem::{http::StatusCode, Endpoint, EndpointExt, Route};
    use poem_openapi::{param::Query, payload::Json, Object, OpenApi, OpenApiService};
    use uuid::Uuid;

    use super::*;

    #[derive(Object, Debug, Clone)]
    struct ThingOut {
        id: u32,
    }

    impl PageItem for ThingOut {
        const PAGE_NAME: &'static str = "ThingPage";
        const CURSOR_DOC: Option<&'static str> = Some(NEXT_CURSOR_DOC);
    }

    // What `Page<ThingOut>` replaced, written with the derive (a plain comment:
    // a doc comment would become the schema's description).
    #[derive(Object, Debug)]
    struct DerivedThingPage {
        items: Vec<ThingOut>,
        /// Pass as `cursor` for the next page; null on the last page.
        next_cursor: Option<String>,
    }

    fn old_default_limit() -> u32 {
        50
    }

    struct Old;

    #[OpenApi]
    impl Old {
        /// A list.
        #[oai(path = "/things", method = "get")]
        async fn list(
            &self,
            /// Page size (1–1000, default 50).
            #[oai(default = "old_default_limit", validator(minimum(value = "1"), maximum(value = "1000")))]
            limit: Query<u32>,
        ) -> Json<DerivedThingPage> {
            Json(DerivedThingPage { items: vec![ThingOut { id: limit.0 }], next_cursor: None })
        }
    }

    struct New;

    #[OpenApi]
    impl New {
        /// A list.
        #[oai(path = "/things", method = "get")]
        async fn list(
            &self,
            /// Page size (1–1000, default 50).
            limit: Limit,
        ) -> Json<Page<ThingOut>> {
            Json(Page { items: vec![ThingOut { id: limit.get() }], next_cursor: None })
        }
    }

    fn spec<T: OpenApi>(api: T) -> Value {
        serde_json::from_str(&OpenApiService::new(api, "t", "1").spec()).unwrap()
    }

    #[test]
    fn limit_documents_the_same_parameter_as_the_validated_attribute() {
        let (old, new) = (spec(Old), spec(New));
        assert_eq!(old["paths"], new["paths"].to_string().replace("ThingPage", "DerivedThingPage").parse::<Value>().unwrap());
        let params = &new["paths"]["/things"]["get"]["parameters"][0];
        assert_eq!(params["schema"]["default"], 50);
        assert_eq!(params["required"], false);
    }

    #[test]
    fn page_documents_the_same_schema_as_the_derived_page() {
        let (old, new) = (spec(Old), spec(New));
        let mut derived = old["components"]["schemas"]["DerivedThingPage"].clone();
        derived["title"] = "ThingPage".into();
        assert_eq!(new["components"]["schemas"]["ThingPage"], derived);
    }

    async fn answer(ep: &impl Endpoint, query: &str) -> (StatusCode, String) {
        let req = Request::builder().uri(format!("/things{query}").parse().unwrap()).finish();
        let resp = ep.get_response(req).await;
        (resp.status(), resp.into_body().into_string().await.unwrap())
    }

    #[tokio::test]
    async fn limit_answers_every_query_as_the_validated_attribute_did() {
        let old = Route::new().nest("/", OpenApiService::new(Old, "t", "1")).map_to_response();
        let new = Route::new().nest("/", OpenApiService::new(New, "t", "1")).map_to_response();
        for query in [
            "", "?limit=", "?limit=0", "?limit=1", "?limit=50", "?limit=1000", "?limit=1001", "?limit=-1",
            "?limit=abc", "?limit=1.5", "?limit=99999999999", "?limit=7&limit=2000", "?LIMIT=3",
        ] {
            let (old_answer, new_answer) = (answer(&old, query).await, answer(&new, query).await);
            assert_eq!(old_answer, new_answer, "{query:?}");
        }
        assert_eq!(answer(&new, "").await.1, r#"{"items":[{"id":50}],"next_cursor":null}"#);
    }

    #[test]
    fn cursors_are_uuids_or_absent() {
        assert_eq!(parse_cursor::<Uuid>(None).unwrap(), None);
        assert_eq!(parse_cursor::<Uuid>(Some("")).unwrap(), None);
        let id = Uuid::now_v7();
        assert_eq!(parse_cursor(Some(&id.to_string())).unwrap(), Some(id));
        assert!(matches!(parse_cursor::<Uuid>(Some("zzz")), Err(ApiError::BadRequest(_))));
    }
}
