-- The fit job claims a fit by a lease instead of a row lock held while it computes, so no
-- transaction stays open for the length of a fit. A replica sets leased_until (renewing it
-- while it computes) and a fresh random lease_token; it stores its result only if the
-- token is still the row's. A replica that died loses the fit when leased_until passes, and
-- its late result, if any, finds another token and is discarded.
ALTER TABLE fits ADD COLUMN leased_until timestamptz;
ALTER TABLE fits ADD COLUMN lease_token uuid;
