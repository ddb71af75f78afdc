-- Drops the stand-in only if it is the one 0020 made (the storage rollups are left alone).
DO $$
BEGIN
    IF obj_description(to_regclass('span_rollups_1m'), 'pg_class') = 'api stub (migration 0020); replaced by the storage rollups' THEN
        DROP TABLE span_rollups_1m;
    END IF;
END
$$;
