-- initbox:no-transaction
CREATE INDEX CONCURRENTLY orders_customer_id ON orders (customer_id);
