-- Version 2, "migration" scenario: a migration that fails halfway. Its first statement
-- works, its second refers to a table that does not exist, so the whole migration is
-- rolled back by its transaction and `migrate` exits non-zero with 002 applied.
-- up
CREATE TABLE invoice_totals (
    company_id INTEGER PRIMARY KEY REFERENCES companies(id),
    total_cents INTEGER NOT NULL DEFAULT 0
);
INSERT INTO invoice_totals (company_id, total_cents)
    SELECT company_id, SUM(amount_cents) FROM invoices GROUP BY company_id;
-- down
DROP TABLE invoice_totals;
