-- Scales the SaaS fixture (tests/fixtures/saas.sql, loaded first) up to a
-- benchmark database: psql -X -v ON_ERROR_STOP=1 -v n=<units> -f bench/generate.sql
--
-- One unit ≈ 1.2 kB on disk with indexes (bench/run picks n for --size).
-- Size is dominated by log-like and transaction tables (usage_logs,
-- credit_transactions, messages, point_transactions, sessions) spread over
-- 12 months. 1% of the recent credit_transactions are REVERSALs of old
-- rows, and every USAGE row bills a usage_log chain (schema-only in the
-- scope), so closure does real work. Deterministic apart from now().
-- Everything is generated inside PostgreSQL (generate_series).

SET client_min_messages = warning;
SET synchronous_commit = off;
SET maintenance_work_mem = '256MB';

-- usage_logs: 2n rows in chains of 2 (root, then a child), ~ 120 bytes of jsonb each.
INSERT INTO usage_logs (id, user_id, parent_id, model, endpoint, prompt_tokens, completion_tokens, cost, request, latency_ms, created_at)
SELECT md5('bench_log:' || g)::uuid,
       md5('user:' || (1 + g / 2 % 200))::uuid,
       CASE WHEN g % 2 = 1 THEN md5('bench_log:' || (g - 1))::uuid END,
       (ARRAY['gpt-4o', 'gpt-4o-mini', 'claude-3-5-sonnet', 'gemini-1.5-pro'])[1 + g % 4],
       (ARRAY['/v1/chat/completions', '/v1/embeddings', '/v1/images'])[1 + g % 3],
       100 + g % 4000, 20 + g % 1500, ((g % 9973) / 1000.0)::numeric(12,6),
       jsonb_build_object('temperature', (g % 10) / 10.0, 'max_tokens', 256 + g % 2048,
                          'prompt_hash', md5('p' || g), 'stream', g % 3 = 0),
       20 + g % 3000,
       now() - make_interval(secs => (g / 2 * 2 % (365 * 86400))::double precision) - interval '1 hour'
FROM generate_series(0, 2 * :n - 1) g;

-- credit_transactions: n rows. Every 4th is a USAGE billing the child of a
-- usage_log chain at the same instant; 1% of the recent ones reverse an old row.
INSERT INTO credit_transactions (id, user_id, account_id, type, amount, description, metadata, reversal_of, usage_log_id, created_at)
SELECT md5('bench_ct:' || g)::uuid,
       md5('user:' || (1 + g % 200))::uuid,
       md5('credit_account:' || (1 + g % 200))::uuid,
       CASE WHEN g % 4 = 0 THEN 'USAGE'::transaction_type
            WHEN g % 100 = 1 AND g < :n / 4 THEN 'REVERSAL'
            ELSE (ARRAY['PURCHASE', 'BONUS', 'REFUND', 'ADJUSTMENT']::transaction_type[])[1 + g % 4] END,
       ((g % 50000) / 100.0)::numeric(18,2),
       'bench transaction ' || g || ' ' || md5('d' || g),
       jsonb_build_object('source', 'bench', 'n', g),
       CASE WHEN g % 100 = 1 AND g < :n / 4 THEN md5('bench_ct:' || (:n - 1 - g / 2 * 2))::uuid END,
       CASE WHEN g % 4 = 0 THEN md5('bench_log:' || (2 * g + 1) % (2 * :n))::uuid END,
       now() - make_interval(secs => ((g::bigint * 365 * 86400 / :n) % (365 * 86400))::double precision) - interval '1 hour'
FROM generate_series(0, :n - 1) g;
-- USAGE rows happen when their call did.
UPDATE credit_transactions c SET created_at = l.created_at
  FROM usage_logs l WHERE c.usage_log_id = l.id AND c.description LIKE 'bench %';

-- point_transactions: n/2 rows.
INSERT INTO point_transactions (id, user_id, account_id, type, amount, reason, created_at)
SELECT md5('bench_pt:' || g)::uuid,
       md5('user:' || (1 + g % 200))::uuid,
       md5('point_account:' || (1 + g % 200))::uuid,
       (ARRAY['BONUS', 'USAGE', 'ADJUSTMENT']::transaction_type[])[1 + g % 3],
       ((g % 1000) / 10.0)::numeric(18,2),
       'daily activity ' || g,
       now() - make_interval(secs => ((g::bigint * 2 * 365 * 86400 / :n) % (365 * 86400))::double precision) - interval '1 hour'
FROM generate_series(0, :n / 2 - 1) g;

-- conversations (n/20) and messages (n), ~ 250 bytes of text each, some Thai.
INSERT INTO conversations (id, user_id, title, model, created_at, updated_at)
SELECT md5('bench_conv:' || g)::uuid, md5('user:' || (1 + g % 200))::uuid,
       'Conversation ' || g, 'gpt-4o',
       now() - make_interval(secs => ((g::bigint * 20 * 365 * 86400 / :n) % (365 * 86400))::double precision) - interval '2 hours',
       now() - interval '1 hour'
FROM generate_series(0, :n / 20 - 1) g;
INSERT INTO messages (id, conversation_id, role, content, token_count, created_at)
SELECT md5('bench_msg:' || g)::uuid,
       md5('bench_conv:' || (g / 20))::uuid,
       (ARRAY['user', 'assistant'])[1 + g % 2],
       'สวัสดีครับ message ' || g || ': ' || repeat(md5('m' || g), 6),
       10 + g % 900,
       -- every 8th conversation's last message is recent while the conversation is old
       CASE WHEN g % 160 = 19 THEN now() - interval '3 days'
            ELSE now() - make_interval(secs => ((g::bigint * 365 * 86400 / :n) % (365 * 86400))::double precision) - interval '1 hour' END
FROM generate_series(0, (:n / 20) * 20 - 1) g;

-- sessions (schema-only in the scope): n/4 rows.
INSERT INTO sessions (id, user_id, token, user_agent, ip, expires_at, created_at)
SELECT md5('bench_sess:' || g)::uuid, md5('user:' || (1 + g % 200))::uuid,
       md5('tok' || g) || md5('tok2' || g),
       'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36',
       ('10.' || (g % 250) || '.' || (g / 250 % 250) || '.1')::inet,
       now() + interval '30 days', now() - make_interval(secs => (g % (365 * 86400))::double precision)
FROM generate_series(0, :n / 4 - 1) g;

VACUUM ANALYZE;
