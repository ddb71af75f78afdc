ALTER TABLE span_links DROP COLUMN IF EXISTS exact_values;
ALTER TABLE span_events DROP COLUMN IF EXISTS exact_values;
ALTER TABLE spans DROP COLUMN IF EXISTS exact_values;
ALTER TABLE spans DROP COLUMN IF EXISTS scope_dropped_attributes_count;
ALTER TABLE spans DROP COLUMN IF EXISTS scope_schema_url;
ALTER TABLE spans DROP COLUMN IF EXISTS scope_attributes;
ALTER TABLE spans DROP COLUMN IF EXISTS resource_dropped_attributes_count;
ALTER TABLE spans DROP COLUMN IF EXISTS resource_schema_url;
