-- What OTLP carries besides span attributes, kept so that a trace read back (the Tempo
-- endpoint's OTLP answer, the JSON API) equals what the SDK sent:
--  * the resource's schema URL and dropped-attributes count;
--  * the instrumentation scope's attributes, schema URL and dropped-attributes count;
--  * exact_values: for the attribute values plain JSON cannot hold exactly (a double with an
--    integral value, NaN or an infinity, bytes, or a list/map holding one), their OTLP/JSON
--    AnyValue, by map and key: {"attributes": {...}, "resource_attributes": {...},
--    "scope_attributes": {...}}. NULL (the common case) when every value is exact in the
--    plain JSON columns, which stay what queries filter on.
-- Every new column is nullable without a default: adding it rewrites nothing, also on
-- compressed hypertable chunks, and rows stored before this migration read as "not sent"
-- (NULL counts as 0).
ALTER TABLE spans ADD COLUMN resource_schema_url text;
ALTER TABLE spans ADD COLUMN resource_dropped_attributes_count bigint;
ALTER TABLE spans ADD COLUMN scope_attributes jsonb;
ALTER TABLE spans ADD COLUMN scope_schema_url text;
ALTER TABLE spans ADD COLUMN scope_dropped_attributes_count bigint;
ALTER TABLE spans ADD COLUMN exact_values jsonb;
ALTER TABLE span_events ADD COLUMN exact_values jsonb;
ALTER TABLE span_links ADD COLUMN exact_values jsonb;
