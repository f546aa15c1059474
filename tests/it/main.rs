// Real-PostgreSQL harness: throwaway cluster or LIFEBOAT_TEST_DATABASE_URL, fresh DBs, comparisons, SaaS fixture.
mod support;
// Tests of the harness itself and of the SaaS fixture's promises.
mod harness;

