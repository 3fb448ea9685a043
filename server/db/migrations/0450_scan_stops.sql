-- Where a terminal was when it scanned (a bus stop id, NULL when it did not say) and which tap the scan was:
-- 'on' boarding or entering (every scan before taps), 'off' a rider tapping off (下车刷卡), which the bound app
-- may re-price by stops travelled. A constant default: no rewrite of the table.
ALTER TABLE scans ADD COLUMN stop text, ADD COLUMN tap text NOT NULL DEFAULT 'on';
