-- The guest's small database: a shop with a few items and orders.
-- /init loads this file into /var/lib/kit/shop.db at every boot (sqlite3),
-- and the API at /cgi-bin/api reads it.  One transaction: one write, not eight.
BEGIN;
CREATE TABLE items (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    price_cents INTEGER NOT NULL,
    stock INTEGER NOT NULL
);
INSERT INTO items (id, name, price_cents, stock) VALUES
    (1, 'USB cable', 499, 40),
    (2, 'Keyboard', 2950, 12),
    (3, 'Mouse', 1590, 25),
    (4, 'Monitor', 17900, 4);

CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    item_id INTEGER NOT NULL REFERENCES items(id),
    quantity INTEGER NOT NULL,
    customer TEXT NOT NULL
);
INSERT INTO orders (id, item_id, quantity, customer) VALUES
    (1, 2, 1, 'ada'),
    (2, 1, 3, 'linus'),
    (3, 4, 2, 'grace');
COMMIT;
