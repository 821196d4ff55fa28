-- Business Portal: the companies our customers manage.
-- up
CREATE TABLE companies (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    city TEXT NOT NULL,
    employees INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL DEFAULT (datetime('now'))
);
INSERT INTO companies (id, name, city, employees) VALUES
    (1, 'Acme Logistics', 'Hamburg', 120),
    (2, 'Birch & Co', 'Vienna', 35),
    (3, 'Cobalt Health', 'Zurich', 410),
    (4, 'Delta Studios', 'Berlin', 18);
-- down
DROP TABLE companies;
