-- Version 2: per-company features. A new table only, so version 1 keeps working on it.
-- up
CREATE TABLE company_features (
    company_id INTEGER NOT NULL REFERENCES companies(id),
    feature TEXT NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (company_id, feature)
);
INSERT INTO company_features (company_id, feature, enabled) VALUES
    (1, 'mobile-navigation', 1),
    (1, 'new-tables', 0),
    (3, 'mobile-navigation', 1);
-- down
DROP TABLE company_features;
