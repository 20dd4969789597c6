//! `ProviderStore` on PostgreSQL. An access is one transaction on one person's rows: the
//! records, then the next place in that person's chain of the access log. Two accesses to
//! different persons touch no common row; two to the same person queue for their turn at the
//! chain (`CARD_AND_TURN`), and the unique key of the chain's next place is the backstop: a
//! loser runs again.

use crate::two_phase::{CrashPoint, CrashSwitch, Nodes, Recovered, Spanning};
use crate::{
    Attempt, col, connection, db_err, hash32, lost_race, new_id, retrying, to_u16, to_u32,
};
use chrono::NaiveDate;
use deadpool_postgres::Transaction;
use futures_util::{StreamExt, pin_mut};
use myna_domain::access::{
    AccessEntry, ChainBreak, ChainedEntry, Consent, Hash32, HospitalRead, PartitionedVerifier,
    Purpose, Viewer, chain, link_hash,
};
use myna_domain::codes::{ReceiptDrugCode, YjCode};
use myna_domain::person::{Address, Coverage, Person, PersonId, Sex};
use myna_domain::records::{
    Dialysis, Dispensing, DrugRef, HealthCheck, Institution, MedicalRecords, Procedure, Visit,
};
use myna_domain::summary::{View, Windows};
use myna_store::columns::{
    Masters, care_setting, care_setting_str, corrupt, dialysis_modality, dialysis_modality_str,
    institution_kind, institution_kind_str, procedure_kind, procedure_kind_str, product_conflict,
    source,
};
use myna_store::import::{ImportBatch, Imported, LineNo, Record};
use myna_store::{
    AccessGranted, AccessRequest, ChainPosition, ChainReport, ChainWalk, DatasetInfo,
    HospitalReadLogged, HospitalReadReport, Organisation, PersonRecordSet, ProviderStore,
    StoreError, hospital_read_entry, hospital_read_logged_before, name_from_master, secret_matches,
};
use std::collections::{HashMap, HashSet};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

mod embedded {
    refinery::embed_migrations!("migrations/provider");
}

/// The provider's migrations are recorded apart from ems's, so both can share one database.
const HISTORY_TABLE: &str = "provider_schema_history";

pub struct PgProviderStore {
    pub(crate) pool: deadpool_postgres::Pool,
    /// The data nodes, when the database is their coordinator (`sharded`): its person-keyed
    /// tables are partitioned over foreign tables on them.
    nodes: Option<Nodes>,
    /// Where a write that spans nodes stops, in a test of recovery.
    crash: CrashSwitch,
    /// Institution and drug names read before. The masters are only ever added to (`ON
    /// CONFLICT … DO NOTHING`), so a name once read stays right and is not read again.
    names: std::sync::RwLock<Masters>,
}

/// Runs the provider's migrations on one data node, one process at a time (two coordinators
/// starting together would otherwise both apply the same migration).
async fn migrate_node(pool: &deadpool_postgres::Pool) -> Result<(), StoreError> {
    crate::migrate(pool, embedded::migrations::runner(), HISTORY_TABLE)
        .await
        .map_err(|e| StoreError::Unavailable(format!("migrating: {e}")))
}

/// A lost race: a serialization failure or deadlock, or the unique key of a chain's next
/// place. Any other unique key (a person or serial loaded twice) is the caller's error.
fn attempt(e: tokio_postgres::Error) -> Attempt {
    let constraint = violated_constraint(&e).unwrap_or("");
    let unique = e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION);
    if lost_race(&e) && (!unique || constraint.starts_with("access_log_")) {
        Attempt::Retry(e)
    } else if unique && RECORD_KEYS.contains(&constraint) {
        // Which record: `import_batch` looks it up by the batch's keys.
        Attempt::Fail(StoreError::InvalidRecord {
            person: 0,
            problem: RECORD_HELD.into(),
        })
    } else {
        Attempt::Fail(db_err(e))
    }
}

/// For a statement whose only unique key is a race's (the next place in a chain, a person two
/// imports insert at once): any unique violation runs the transaction again. Decided by the
/// statement, not by the constraint's name, which a data node's error does not carry.
fn raced(e: tokio_postgres::Error) -> Attempt {
    if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
        Attempt::Retry(e)
    } else {
        attempt(e)
    }
}

/// Of statements sent together, the error to report: a race to run again first, then the
/// first real failure; the statements after a failure only say the transaction is aborted
/// (25P02, as `db_err` writes it).
fn cause<const N: usize>(errors: [Option<Attempt>; N]) -> Attempt {
    let aborted = |a: &Attempt| matches!(a, Attempt::Fail(StoreError::Unavailable(m)) if m.ends_with("(25P02)"));
    let mut errors: Vec<Attempt> = errors.into_iter().flatten().collect();
    errors.sort_by_key(|a| match a {
        Attempt::Retry(_) => 0,
        a if !aborted(a) => 1,
        _ => 2,
    });
    errors
        .into_iter()
        .next()
        .unwrap_or_else(|| Attempt::Fail(StoreError::Unavailable("statements failed".into())))
}

/// The unique key an error names. On the several-node deployment a data node's error reaches
/// the coordinator's client with its SQLSTATE and message but without the constraint field
/// (postgres_fdw passes on only those), so the name is read from the message there.
fn violated_constraint(e: &tokio_postgres::Error) -> Option<&str> {
    let d = e.as_db_error()?;
    d.constraint().or_else(|| {
        let rest = d.message().split_once("unique constraint \"")?.1;
        Some(rest.split_once('"')?.0)
    })
}

/// The record tables' keys (person, service date, seq).
const RECORD_KEYS: [&str; 5] = [
    "visit_pkey",
    "dispensing_pkey",
    "procedure_record_pkey",
    "dialysis_pkey",
    "health_check_pkey",
];
const RECORD_HELD: &str = "a record with this key (service date, seq) is already held";

fn to_i32(n: u32, what: &str) -> Result<i32, StoreError> {
    i32::try_from(n).map_err(|_| StoreError::InvalidRecord {
        person: 0,
        problem: format!("{what} {n} is out of range"),
    })
}

impl PgProviderStore {
    /// Connects to the database at `url` (`postgres://…`) and brings its schema up to date.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = crate::provider_pool(url)?;
        let nodes = if crate::sharded::is_coordinator(&pool).await? {
            Nodes::of(&pool).await?
        } else {
            None
        };
        let store = Self {
            pool,
            nodes,
            crash: CrashSwitch::default(),
            names: Default::default(),
        };
        // The data nodes first: a column a migration adds is on the node's table before the
        // coordinator's foreign partitions name it (postgres_fdw sends every column it knows).
        store.migrate_nodes().await;
        crate::migrate(&store.pool, embedded::migrations::runner(), HISTORY_TABLE)
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!("migrating {}: {e}", crate::redacted(url)))
            })?;
        // Writes a crash left prepared on the nodes are resolved before any other; what
        // cannot be now is resolved later.
        store.recover_logged().await;
        Ok(store)
    }

    /// Whether any person is held, however they came (`gen`, `load_persons`, an import): the
    /// dataset's recorded count is `gen`'s alone.
    pub async fn holds_persons(&self) -> Result<bool, StoreError> {
        let client = connection(&self.pool).await?;
        Ok(crate::sharded::first_held(&client).await?.is_some())
    }

    /// Brings each data node up to the provider's migrations, one process at a time per node.
    /// A node that cannot be reached or migrated is logged and left for the next call (at
    /// connect, and on `provider serve`'s recovery schedule); until then its persons'
    /// accesses may fail, as they would with the node down.
    pub async fn migrate_nodes(&self) {
        let Some(nodes) = &self.nodes else {
            return;
        };
        for node in 0..nodes.len() {
            let migrated = match nodes.pool(node) {
                Ok(pool) => migrate_node(pool).await,
                Err(e) => Err(e),
            };
            if let Err(e) = migrated {
                tracing::warn!(node, error = %e, "data node not migrated");
            }
        }
    }

    /// Recovery at connect: a failure is logged, not the caller's
    /// (a write finds out for itself whether the nodes it needs answer).
    async fn recover_logged(&self) {
        if let Err(e) = self.recover_spanning_writes().await {
            tracing::warn!(error = %e, "prepared writes on the data nodes not resolved yet");
        }
    }

    /// Resolves the prepared shares of writes that spanned data nodes and were cut short
    /// (`two_phase`): committed where the coordinator decided, rolled back where it did not.
    /// Nothing to do on one node. `provider serve` runs this on a schedule.
    pub async fn recover_spanning_writes(&self) -> Result<Recovered, StoreError> {
        match &self.nodes {
            Some(nodes) => crate::two_phase::recover(&self.pool, nodes).await,
            None => Ok(Recovered::default()),
        }
    }

    /// For tests of recovery: stop each write that spans nodes at `at`, as if the process died.
    #[doc(hidden)]
    pub fn crash_spanning_writes_at(&self, at: Option<CrashPoint>) {
        self.crash.set(at);
    }

    /// Writes `people` and `rows` on their data nodes, committed on all of them with the
    /// coordinator's transaction `tx`, or on none (`two_phase`).
    async fn commit_on_nodes(
        &self,
        nodes: &Nodes,
        tx: Transaction<'_>,
        people: &[&Person],
        write_people: PeopleWrite,
        rows: RecordRows<'_>,
    ) -> Result<(), Attempt> {
        let ids: Vec<i64> = people
            .iter()
            .map(|p| p.id.0)
            .chain(rows.persons())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let node_of = nodes.route(&tx, &ids).await?;
        let mut shares: Vec<(Vec<&Person>, RecordRows<'_>)> =
            (0..nodes.len()).map(|_| Default::default()).collect();
        for p in people {
            share_of(&node_of, &mut shares, p.id.0)?.0.push(p);
        }
        rows.split_into(&node_of, &mut shares)?;
        let spanning = Spanning::begin(&tx, &self.pool, nodes).await?;
        let spanning_ref = &spanning;
        let written = futures_util::future::join_all(
            shares
                .iter()
                .enumerate()
                .filter(|(_, (p, r))| !p.is_empty() || !r.is_empty())
                .map(|(node, (people, rows))| async move {
                    let result = async {
                        let mut client = connection(nodes.pool(node)?).await?;
                        let node_tx = client.transaction().await.map_err(attempt)?;
                        node_tx
                            .batch_execute(crate::BULK_LIMITS)
                            .await
                            .map_err(attempt)?;
                        if !people.is_empty() {
                            match write_people {
                                PeopleWrite::Add => {
                                    copy_people(&node_tx, people.iter().copied()).await?
                                }
                                PeopleWrite::AddOrUpdate => {
                                    upsert_people(&node_tx, people.iter().copied()).await?
                                }
                            }
                        }
                        copy_records(&node_tx, Tables::Store, rows).await?;
                        spanning_ref.prepare(node_tx).await
                    }
                    .await;
                    (node, result)
                }),
        )
        .await;
        let prepared: Vec<usize> = written
            .iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(n, _)| *n)
            .collect();
        // A lost race first (the write runs again), then the first real failure.
        let mut failed: Vec<Attempt> = written.into_iter().filter_map(|(_, r)| r.err()).collect();
        failed.sort_by_key(|a| !matches!(a, Attempt::Retry(_)));
        if let Some(failed) = failed.into_iter().next() {
            drop(tx);
            spanning.abandon(nodes, &prepared).await;
            return Err(failed);
        }
        // A crash here drops `tx`, which rolls the coordinator back as a lost connection would.
        self.crash.at(CrashPoint::BeforeDecision)?;
        // The decision. On any error the prepared shares are settled from the token's row
        // once the transaction has surely ended, not assumed.
        if let Err(e) = tx.commit().await {
            spanning.settle(&self.pool, nodes, &prepared).await;
            if e.as_db_error().is_some() {
                return Err(attempt(e));
            }
            return Err(StoreError::Unavailable(format!(
                "the coordinator's commit went unanswered ({e}): the write is applied on every \
                 node or none, as recovery will settle from the coordinator"
            ))
            .into());
        }
        self.crash.at(CrashPoint::AfterDecision)?;
        spanning.finish(&self.pool, nodes, &prepared).await;
        Ok(())
    }

    async fn access_once(&self, request: &AccessRequest) -> Result<AccessGranted, Attempt> {
        let mut client = connection(&self.pool).await?;
        let tx = crate::read_committed(&mut client).await?;
        let serial = &request.serial_hex;
        let card = rows(&tx, CARD_AND_TURN, [serial]).await?;
        let Some(card) = card.first() else {
            return Err(StoreError::UnknownSerial(serial.clone()).into());
        };
        let person_id: i64 = col(card, 0)?;
        if let Some(revoked_at) = col::<Option<String>>(card, 1)? {
            return Err(StoreError::Revoked {
                serial: serial.clone(),
                revoked_at,
            }
            .into());
        }
        let id = PersonId(person_id);
        let plan = Windows::for_view(request.view).fetch_plan(request.today);
        let rounds = i64::from(plan.health_check_rounds);
        // The person's turn is held: everything the view shows, in one statement.
        let view = rows(
            &tx,
            VIEW,
            [
                &person_id,
                &plan.visits_from,
                &plan.dispensings_from,
                &plan.procedures_from,
                &plan.dialysis_from,
                &request.today,
                &rounds,
                serial,
            ],
        )
        .await?;
        let row = view
            .first()
            .ok_or_else(|| corrupt(format!("certificate links to missing person {person_id}")))?;
        let person = person_of(id, row)?;
        let prev = head_of(person_id, col(row, 13)?, col(row, 14)?)?;
        // A card revoked while this access waited for the person's turn: the view's snapshot
        // was taken after the turn was granted, so it sees that revocation.
        if let Some(revoked_at) = col::<Option<String>>(row, 21)? {
            return Err(StoreError::Revoked {
                serial: serial.clone(),
                revoked_at,
            }
            .into());
        }
        let claims_through =
            myna_store::columns::claims_date_for_access(col::<Option<String>>(row, 15)?.as_deref());
        let records = records_of(&tx, &self.names, row).await?;
        let mut entry = request.entry.clone();
        entry.person_id = id;
        let access_id = new_id(entry.at_ms);
        entry.access_id = Some(access_id);
        let chained = chain(prev, entry);
        insert_access(&tx, access_id, &chained)
            .await
            .map_err(raced)?;
        tx.commit().await.map_err(attempt)?;
        Ok(AccessGranted {
            person,
            records,
            claims_through,
            access_id,
            position: ChainPosition {
                partition: person_id,
                seq: chained.seq,
            },
        })
    }

    async fn hospital_read_once(
        &self,
        report: &HospitalReadReport,
    ) -> Result<HospitalReadLogged, Attempt> {
        let mut client = connection(&self.pool).await?;
        let mut report = report.clone();
        // Before the transaction: the hospital's name in the master, and the crew's access,
        // by its id, found only among the reporter's own. A committed entry never changes;
        // on several nodes every node is asked (a report is rare beside an access), and the
        // person's node is then first reached under the person's lock.
        let source_sql = format!(
            "SELECT {ACCESS_COLUMNS} FROM access_log WHERE access_id = $1 \
             AND organisation_id = $2 AND incident_ref = $3 AND hospital_ems_view_seq IS NULL"
        );
        let code_param: [&(dyn ToSql + Sync); 1] = [&report.read.institution_code];
        let source_params: [&(dyn ToSql + Sync); 3] = [
            &report.read.source_access_id,
            &report.organisation_id,
            &report.incident_ref,
        ];
        let (named, found) = tokio::join!(
            client.query("SELECT name FROM institution WHERE code = $1", &code_param),
            client.query(&source_sql, &source_params),
        );
        let (named, found) = (named.map_err(attempt)?, found.map_err(attempt)?);
        let name = named.first().map(|row| col::<String>(row, 0)).transpose()?;
        name_from_master(&mut report, name);
        let source = match found.as_slice() {
            [] => return Err(StoreError::UnknownAccess.into()),
            [row] => match chained_from_row(row)? {
                (_, Ok(e)) => e,
                (at, Err(problem)) => {
                    return Err(corrupt(format!(
                        "access log {}/{}: {problem}",
                        at.partition, at.seq
                    ))
                    .into());
                }
            },
            // Ids are unique within a person's chain; two persons' accesses under one
            // organisation, incident and id (a 2⁻²⁰ coincidence in one millisecond) are not
            // told apart, so neither is named.
            _ => return Err(StoreError::UnknownAccess.into()),
        };
        let person_id = source.entry.person_id.0;
        let tx = crate::read_committed(&mut client).await?;
        queue_for_person(&tx, person_id).await?;
        let logged = rows(
            &tx,
            "SELECT hospital_institution_code, access_id, seq FROM access_log \
             WHERE person_id = $1 AND hospital_source_access_id = $2 ORDER BY seq",
            [
                &person_id as &(dyn ToSql + Sync),
                &report.read.source_access_id,
            ],
        )
        .await?
        .iter()
        .map(|row| {
            Ok((
                col::<String>(row, 0)?,
                (col::<i64>(row, 1)?, col::<i64>(row, 2)?),
            ))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        if let Some((access_id, seq)) =
            hospital_read_logged_before(logged, &report.read.institution_code)?
        {
            return Ok(HospitalReadLogged {
                access_id,
                position: ChainPosition {
                    partition: person_id,
                    seq,
                },
                new: false,
            });
        }
        let head = rows(&tx, HEAD_OF_CHAIN, [&person_id]).await?;
        let prev = chain_head(person_id, &head)?;
        let mut entry = hospital_read_entry(&source.entry, &report)?;
        let access_id = new_id(entry.at_ms);
        entry.access_id = Some(access_id);
        let chained = chain(prev, entry);
        insert_access(&tx, access_id, &chained)
            .await
            .map_err(raced)?;
        tx.commit().await.map_err(attempt)?;
        Ok(HospitalReadLogged {
            access_id,
            position: ChainPosition {
                partition: person_id,
                seq: chained.seq,
            },
            new: true,
        })
    }

    async fn load_once(&self, persons: &[PersonRecordSet]) -> Result<(), Attempt> {
        let mut client = connection(&self.pool).await?;
        let tx = client.transaction().await.map_err(attempt)?;
        let rows = RecordRows::of_persons(persons);
        insert_masters(&tx, Tables::Store, &rows).await?;
        let cards = persons
            .iter()
            .map(|s| (s.cert_serial.as_str(), s.person.id.0));
        let people: Vec<&Person> = persons.iter().map(|s| &s.person).collect();
        match &self.nodes {
            None => {
                copy_people(&tx, people.into_iter()).await?;
                copy_cards(&tx, Tables::Store, cards).await?;
                copy_records(&tx, Tables::Store, &rows).await?;
                tx.commit().await.map_err(attempt)?;
            }
            Some(nodes) => {
                // Card links stay on the coordinator; persons and records go to their nodes.
                copy_cards(&tx, Tables::Store, cards).await?;
                self.commit_on_nodes(nodes, tx, &people, PeopleWrite::Add, rows)
                    .await?;
            }
        }
        Ok(())
    }
}

impl PgProviderStore {
    /// One batch in one transaction. Its `import_batch` row is written first, so a second
    /// import of the same batch waits on that key and then finds it applied.
    async fn import_once(&self, batch: &ImportBatch) -> Result<Imported, Attempt> {
        let rejected = |line: LineNo, problem: String| {
            Attempt::from(StoreError::ImportRejected { line, problem })
        };
        let mut client = connection(&self.pool).await?;
        let tx = client.transaction().await.map_err(attempt)?;
        // A second import of the same batch waits on the first's row.
        tx.batch_execute(crate::BULK_LIMITS)
            .await
            .map_err(attempt)?;
        let first = i64::try_from(batch.lines.0).unwrap_or(i64::MAX);
        let last = i64::try_from(batch.lines.1).unwrap_or(i64::MAX);
        let items = i64::try_from(batch.len()).unwrap_or(i64::MAX);
        let claimed = tx
            .query_opt(
                "INSERT INTO import_batch (id, digest, first_line, last_line, items, imported_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING RETURNING id",
                &[
                    &batch.id,
                    &batch.digest.as_slice(),
                    &first,
                    &last,
                    &items,
                    &chrono::Utc::now().timestamp_millis(),
                ],
            )
            .await
            .map_err(attempt)?;
        if claimed.is_none() {
            let row = tx
                .query_one(
                    "SELECT digest FROM import_batch WHERE id = $1",
                    &[&batch.id],
                )
                .await
                .map_err(attempt)?;
            let digest: &[u8] = col(&row, 0)?;
            return Ok(myna_store::import::seen_before(batch, digest)?);
        }

        // Demographics: added, or updated to the batch's (on several nodes, with the records
        // at the end).
        if self.nodes.is_none() && !batch.persons.is_empty() {
            upsert_people(&tx, batch.persons.iter().map(|(_, p)| p)).await?;
        }
        // Every person a card or a record names is in the batch or already held.
        let declared: HashSet<i64> = batch.persons.iter().map(|(_, p)| p.id.0).collect();
        let named: Vec<i64> = batch
            .cards
            .iter()
            .map(|(_, c)| c.person.0)
            .chain(batch.records.iter().map(|(_, r)| r.person.0))
            .filter(|id| !declared.contains(id))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let held: HashSet<i64> = tx
            .query("SELECT id FROM person WHERE id = ANY($1)", &[&named])
            .await
            .map_err(attempt)?
            .iter()
            .map(|r| col(r, 0))
            .collect::<Result<_, _>>()?;
        let known = |id: i64| declared.contains(&id) || held.contains(&id);
        for (line, c) in &batch.cards {
            if !known(c.person.0) {
                return Err(rejected(
                    *line,
                    format!("card {}: person {} is not held", c.serial, c.person.0),
                ));
            }
        }
        for (line, r) in &batch.records {
            if !known(r.person.0) {
                return Err(rejected(
                    *line,
                    format!("{}: the person is not held", r.describe()),
                ));
            }
        }
        // Card links: added where new, then every serial read back. One linked to another
        // person (before, or by a batch importing at the same moment, whose insert this one
        // waited for) refuses the batch.
        if !batch.cards.is_empty() {
            let serials: Vec<&str> = batch.cards.iter().map(|(_, c)| c.serial.as_str()).collect();
            let persons: Vec<i64> = batch.cards.iter().map(|(_, c)| c.person.0).collect();
            tx.execute(
                "INSERT INTO auth_cert (serial, person_id) \
                 SELECT * FROM UNNEST($1::text[], $2::int8[]) ON CONFLICT (serial) DO NOTHING",
                &[&serials, &persons],
            )
            .await
            .map_err(attempt)?;
            let linked: HashMap<String, i64> = tx
                .query(
                    "SELECT serial, person_id FROM auth_cert WHERE serial = ANY($1)",
                    &[&serials],
                )
                .await
                .map_err(attempt)?
                .iter()
                .map(|r| Ok((col(r, 0)?, col(r, 1)?)))
                .collect::<Result<_, StoreError>>()?;
            for (line, c) in &batch.cards {
                match linked.get(&c.serial) {
                    Some(p) if *p == c.person.0 => {}
                    Some(p) => {
                        return Err(rejected(
                            *line,
                            format!("card {} is linked to another person ({p})", c.serial),
                        ));
                    }
                    None => return Err(corrupt(format!("card {} was not stored", c.serial)).into()),
                }
            }
        }
        let rows = RecordRows::of_batch(batch)?;
        insert_masters(&tx, Tables::Store, &rows).await?;
        match &self.nodes {
            None => {
                copy_records(&tx, Tables::Store, &rows).await?;
                tx.commit().await.map_err(attempt)?;
            }
            Some(nodes) => {
                let people: Vec<&Person> = batch.persons.iter().map(|(_, p)| p).collect();
                self.commit_on_nodes(nodes, tx, &people, PeopleWrite::AddOrUpdate, rows)
                    .await?;
            }
        }
        Ok(Imported::Applied { items: batch.len() })
    }

    /// The first record of `batch` whose key is already held (after a refused import).
    async fn held_record(&self, batch: &ImportBatch) -> Result<StoreError, StoreError> {
        let client = connection(&self.pool).await?;
        for (line, r) in &batch.records {
            let table = match r.record {
                Record::Visit(_) => "visit",
                Record::Dispensing(_) => "dispensing",
                Record::Procedure(_) => "procedure_record",
                Record::Dialysis(_) => "dialysis",
                Record::HealthCheck(_) => "health_check",
            };
            let seq = i32::try_from(r.seq).unwrap_or(i32::MAX);
            let found = client
                .query_opt(
                    &format!(
                        "SELECT 1 FROM {table} WHERE person_id = $1 AND service_date = $2 \
                         AND seq = $3"
                    ),
                    &[&r.person.0, &r.record.service_date(), &seq],
                )
                .await
                .map_err(db_err)?;
            if found.is_some() {
                return Ok(StoreError::ImportRejected {
                    line: *line,
                    problem: format!("{}: {RECORD_HELD}", r.describe()),
                });
            }
        }
        // Gone by now (another writer's transaction rolled back): say so without a line.
        Ok(StoreError::ImportRejected {
            line: batch.lines.0,
            problem: format!("batch {:?}: {RECORD_HELD}", batch.id),
        })
    }
}

/// A person's text columns in `PERSON_COLUMNS` order (name, reading, then address and
/// coverage), for the COPY and the UNNEST upsert alike.
fn person_texts(p: &Person) -> [&str; 11] {
    [
        &p.name,
        &p.name_kana,
        &p.address.postal_code,
        &p.address.prefecture,
        &p.address.municipality,
        &p.address.street,
        &p.coverage.insurer_number,
        &p.coverage.insurer_name,
        &p.coverage.symbol,
        &p.coverage.number,
        &p.coverage.branch,
    ]
}

/// Demographics: the persons already held are updated to these, and the rest inserted, each
/// by one UNNEST statement. Not `ON CONFLICT (id) DO UPDATE`: on the several-node deployment
/// `person` is partitioned over foreign tables, which carry no unique index for a conflict
/// target. A person that another import inserts at the same moment makes the insert fail on
/// the key, and the batch runs again, then finding the person held.
async fn upsert_people<'p>(
    tx: &Transaction<'_>,
    people: impl Iterator<Item = &'p Person>,
) -> Result<(), Attempt> {
    let mut id = Vec::new();
    let mut sex = Vec::new();
    let mut birth = Vec::new();
    let mut text: [Vec<&str>; 11] = Default::default();
    for p in people {
        id.push(p.id.0);
        sex.push(i16::from(p.sex.code()));
        birth.push(p.birth_date);
        for (column, value) in text.iter_mut().zip(person_texts(p)) {
            column.push(value);
        }
    }
    // In `PERSON_COLUMNS` order: id, the name and its reading, birth date, sex, the rest.
    let [name, kana, rest @ ..] = &text;
    let mut columns: Vec<&(dyn ToSql + Sync)> = vec![&id, name, kana, &birth, &sex];
    columns.extend(rest.iter().map(|c| c as &(dyn ToSql + Sync)));
    const BATCH: &str = "UNNEST($1::int8[], $2::text[], $3::text[], $4::date[], $5::int2[], \
         $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], \
         $13::text[], $14::text[]) AS n (id, name, name_kana, birth_date, sex, postal_code, \
         prefecture, municipality, street, insurer_number, insurer_name, insured_symbol, \
         insured_number, insured_branch)";
    // `person.id = ANY($1)` lets a data node find the rows by its index.
    tx.execute(
        &format!(
            "UPDATE person SET name = n.name, name_kana = n.name_kana, \
             birth_date = n.birth_date, sex = n.sex, postal_code = n.postal_code, \
             prefecture = n.prefecture, municipality = n.municipality, street = n.street, \
             insurer_number = n.insurer_number, insurer_name = n.insurer_name, \
             insured_symbol = n.insured_symbol, insured_number = n.insured_number, \
             insured_branch = n.insured_branch FROM {BATCH} \
             WHERE person.id = n.id AND person.id = ANY($1)"
        ),
        &columns,
    )
    .await
    .map_err(attempt)?;
    tx.execute(
        &format!(
            "INSERT INTO {PERSON_COLUMNS} SELECT n.* FROM {BATCH} \
             WHERE NOT EXISTS (SELECT 1 FROM person p WHERE p.id = n.id AND p.id = ANY($1))"
        ),
        &columns,
    )
    .await
    .map_err(raced)?;
    Ok(())
}

/// A statement prepared once per connection (the server keeps its plan), not on every call:
/// the access path runs five statements per summary.
async fn prepared(
    tx: &Transaction<'_>,
    sql: &str,
) -> Result<tokio_postgres::Statement, tokio_postgres::Error> {
    tx.prepare_cached(sql).await
}

const ACCESS_COLUMNS: &str = "person_id, seq, access_id, at_ms, organisation_id, \
     viewer_organisation, viewer_team, viewer_crew_member, incident_ref, cert_serial, purpose, \
     consent, exception_reason, view, prev_hash, hash, hospital_source_access_id, \
     hospital_institution_code, hospital_name, hospital_read_at_ms, hospital_ems_view_seq";

async fn insert_access(
    tx: &Transaction<'_>,
    access_id: i64,
    e: &ChainedEntry,
) -> Result<u64, tokio_postgres::Error> {
    let x = &e.entry;
    let reason = x.consent.reason().map(|r| r.as_str());
    let read = x.hospital_read.as_ref();
    tx.execute(
        &prepared(
            tx,
            &format!(
                "INSERT INTO access_log ({ACCESS_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, \
             $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)"
            ),
        )
        .await?,
        &[
            &x.person_id.0,
            &e.seq,
            &access_id,
            &x.at_ms,
            &x.organisation_id,
            &x.viewer.organisation,
            &x.viewer.team,
            &x.viewer.crew_member,
            &x.incident_ref,
            &x.cert_serial,
            &x.purpose.as_str(),
            &x.consent.kind_str(),
            &reason,
            &x.view.as_str(),
            &e.prev_hash.as_slice(),
            &e.hash.as_slice(),
            &read.map(|h| h.source_access_id),
            &read.map(|h| h.institution_code.as_str()),
            &read.map(|h| h.hospital_name.as_str()),
            &read.map(|h| h.read_at_ms),
            &read.map(|h| h.ems_view_seq),
        ],
    )
    .await
}

/// Decodes one access_log row (its place, and the entry with its links); an undecodable row
/// is reported with its place, not hidden.
fn chained_from_row(
    row: &tokio_postgres::Row,
) -> Result<(ChainPosition, Result<ChainedEntry, String>), StoreError> {
    let at = ChainPosition {
        partition: col(row, 0)?,
        seq: col(row, 1)?,
    };
    let decoded = (|| -> Result<ChainedEntry, String> {
        let text = |i: usize| -> Result<String, String> {
            row.try_get::<_, String>(i).map_err(|e| e.to_string())
        };
        let purpose = text(10)?;
        let consent = text(11)?;
        let reason: Option<String> = row.try_get(12).map_err(|e| e.to_string())?;
        let view = text(13)?;
        let entry = AccessEntry {
            at_ms: row.try_get(3).map_err(|e| e.to_string())?,
            organisation_id: text(4)?,
            viewer: Viewer {
                organisation: text(5)?,
                team: text(6)?,
                crew_member: text(7)?,
            },
            incident_ref: text(8)?,
            person_id: PersonId(at.partition),
            cert_serial: text(9)?,
            purpose: Purpose::parse(&purpose).ok_or(format!("unknown purpose {purpose:?}"))?,
            consent: Consent::from_parts(&consent, reason.as_deref())
                .ok_or(format!("unknown consent {consent:?}/{reason:?}"))?,
            view: View::parse(&view).ok_or(format!("unknown view {view:?}"))?,
            hospital_read: hospital_read_of(row)?,
            access_id: Some(row.try_get(2).map_err(|e| e.to_string())?),
        };
        let prev = hash32(row.try_get(14).map_err(|e| e.to_string())?, "previous")?;
        let hash = hash32(row.try_get(15).map_err(|e| e.to_string())?, "entry")?;
        Ok(ChainedEntry {
            seq: at.seq,
            entry: with_legacy_id(at.seq, entry, &prev, &hash),
            prev_hash: prev,
            hash,
        })
    })();
    Ok((at, decoded))
}

/// An entry written before access ids were chained (its hash matches only without the id) is
/// read as such: its id is not covered, and the rest of it still is. Any other entry keeps its
/// id, so one whose id was changed fails the hash check.
fn with_legacy_id(seq: i64, entry: AccessEntry, prev: &Hash32, hash: &Hash32) -> AccessEntry {
    if entry.access_id.is_none() || link_hash(seq, &entry, prev) == *hash {
        return entry;
    }
    let legacy = AccessEntry {
        access_id: None,
        ..entry.clone()
    };
    if link_hash(seq, &legacy, prev) == *hash {
        legacy
    } else {
        entry
    }
}

/// One dataset fact (`$1`) set to `$2`.
const PUT_DATASET_INFO: &str = "INSERT INTO dataset_info (key, value) VALUES ($1, $2) \
     ON CONFLICT (key) DO UPDATE SET value = excluded.value";

/// The newest entry of a person's chain (`$1`): its place and hash.
const HEAD_OF_CHAIN: &str =
    "SELECT seq, hash FROM access_log WHERE person_id = $1 ORDER BY seq DESC LIMIT 1";

/// The place and hash of `HEAD_OF_CHAIN`'s row, if any.
fn chain_head(
    person_id: i64,
    head: &[tokio_postgres::Row],
) -> Result<Option<(i64, Hash32)>, StoreError> {
    match head.first() {
        Some(row) => head_of(person_id, Some(col(row, 0)?), Some(col(row, 1)?)),
        None => Ok(None),
    }
}

/// The head of a person's chain from its place and hash, both absent for an empty chain.
fn head_of(
    person_id: i64,
    seq: Option<i64>,
    hash: Option<&[u8]>,
) -> Result<Option<(i64, Hash32)>, StoreError> {
    match (seq, hash) {
        (None, None) => Ok(None),
        (Some(seq), Some(hash)) => {
            let hash = hash32(hash, format!("access log {person_id}/{seq}")).map_err(corrupt)?;
            Ok(Some((seq, hash)))
        }
        _ => Err(corrupt(format!(
            "access log {person_id}: a head without its place or hash"
        ))),
    }
}

/// Columns 16–20 of an access_log row (`columns::hospital_read`).
fn hospital_read_of(row: &tokio_postgres::Row) -> Result<Option<HospitalRead>, String> {
    let get = |e: tokio_postgres::Error| e.to_string();
    myna_store::columns::hospital_read(
        row.try_get(16).map_err(get)?,
        row.try_get(17).map_err(get)?,
        row.try_get(18).map_err(get)?,
        row.try_get(19).map_err(get)?,
        row.try_get(20).map_err(get)?,
    )
}

/// Takes the person's turn at their chain, as `CARD_AND_TURN` does for an access: the same
/// advisory lock, before any statement of the transaction reaches the person's node.
async fn queue_for_person(tx: &Transaction<'_>, person_id: i64) -> Result<(), Attempt> {
    tx.execute(
        &prepared(tx, "SELECT pg_advisory_xact_lock($1)")
            .await
            .map_err(attempt)?,
        &[&person_id],
    )
    .await
    .map_err(attempt)?;
    Ok(())
}

/// A card's person and its revocation; for a linked card not revoked, also that person's turn
/// at their chain: an advisory lock until the transaction ends, which accesses and hospital reads of one
/// person queue for rather than race for the next place (the unique key stays the backstop).
/// On several nodes these tables are the coordinator's, so the turn is held before any
/// statement reaches the person's node, which runs its side of the transaction as REPEATABLE
/// READ from its first statement and would otherwise read a head already passed.
const CARD_AND_TURN: &str = "SELECT a.person_id, r.revoked_at, \
     CASE WHEN r.serial IS NULL THEN pg_advisory_xact_lock(a.person_id) END \
     FROM auth_cert a LEFT JOIN revoked_cert r ON r.serial = a.serial WHERE a.serial = $1";

/// Everything an access reads, in one statement and so from one snapshot, taken once the
/// person's turn is held: the person (columns 0–12), the head of their chain (13 and 14, null
/// for an empty chain), the dataset's claims date (15), the rows of each record table the
/// fetch plan names as a JSON array of arrays (16–20, null for none), oldest first, and the
/// card's revocation as seen now (21), after the wait for the turn. One statement instead of
/// seven: each costs the server a portal, an executor and a flush.
const VIEW: &str = "SELECT p.name, p.name_kana, p.birth_date, p.sex, p.postal_code, \
     p.prefecture, p.municipality, p.street, p.insurer_number, p.insurer_name, \
     p.insured_symbol, p.insured_number, p.insured_branch, h.seq, h.hash, d.value, \
     (SELECT json_agg(json_build_array(service_date, available_on, institution_code, \
         department, setting, source) ORDER BY service_date, seq) \
         FROM visit WHERE person_id = $1 AND service_date >= $2)::text, \
     (SELECT json_agg(json_build_array(service_date, available_on, yj, daily_quantity, unit, \
         days, prescriber_code, pharmacy_code, source, receipt_code) ORDER BY service_date, seq) \
         FROM dispensing WHERE person_id = $1 AND service_date >= $3)::text, \
     (SELECT json_agg(json_build_array(service_date, available_on, kind, code, name, \
         institution_code, source) ORDER BY service_date, seq) \
         FROM procedure_record WHERE person_id = $1 AND service_date >= $4)::text, \
     (SELECT json_agg(json_build_array(service_date, available_on, modality, sessions, \
         institution_code, source) ORDER BY service_date, seq) \
         FROM dialysis WHERE person_id = $1 AND service_date >= $5)::text, \
     (SELECT json_agg(json_build_array(service_date, available_on, height_cm, weight_kg, \
         systolic_mmhg, diastolic_mmhg, hba1c_percent, ldl_mg_dl, egfr, urine_protein, source) \
         ORDER BY service_date, seq) \
         FROM (SELECT * FROM health_check WHERE person_id = $1 AND available_on <= $6 \
         ORDER BY service_date DESC, seq DESC LIMIT $7) newest)::text, \
     (SELECT revoked_at FROM revoked_cert WHERE serial = $8) \
     FROM person p \
     LEFT JOIN LATERAL (SELECT seq, hash FROM access_log WHERE person_id = $1 \
         ORDER BY seq DESC LIMIT 1) h ON true \
     LEFT JOIN dataset_info d ON d.key = 'claims_through' \
     WHERE p.id = $1";

/// The person of `VIEW`'s row (columns 0–12).
fn person_of(id: PersonId, row: &tokio_postgres::Row) -> Result<Person, StoreError> {
    let sex: i16 = col(row, 3)?;
    Ok(Person {
        id,
        name: col(row, 0)?,
        name_kana: col(row, 1)?,
        birth_date: col(row, 2)?,
        sex: u8::try_from(sex)
            .ok()
            .and_then(Sex::from_code)
            .ok_or_else(|| corrupt("bad sex code"))?,
        address: Address {
            postal_code: col(row, 4)?,
            prefecture: col(row, 5)?,
            municipality: col(row, 6)?,
            street: col(row, 7)?,
        },
        coverage: Coverage {
            insurer_number: col(row, 8)?,
            insurer_name: col(row, 9)?,
            symbol: col(row, 10)?,
            number: col(row, 11)?,
            branch: col(row, 12)?,
        },
    })
}

/// Which tables a write or a reference lookup uses: the store's own, or the import
/// benchmark's baseline copies (`baseline_…`). The lookups are static text, so the access
/// path builds no SQL per call.
#[derive(Clone, Copy)]
enum Tables {
    Store,
    Baseline,
}

macro_rules! master_lookups {
    ($prefix:literal) => {
        [
            concat!(
                "SELECT code, name, kind FROM ",
                $prefix,
                "institution WHERE code = ANY($1)"
            ),
            concat!(
                "SELECT yj, yj, receipt_code, name, generic_name, strength FROM ",
                $prefix,
                "drug WHERE yj = ANY($1)"
            ),
            concat!(
                "SELECT receipt_code, yj, receipt_code, name, generic_name, strength FROM ",
                $prefix,
                "drug_product WHERE receipt_code = ANY($1)"
            ),
        ]
    };
}

impl Tables {
    fn prefix(self) -> &'static str {
        match self {
            Tables::Store => "",
            Tables::Baseline => "baseline_",
        }
    }

    /// Institutions by code, drugs by YJ code, products by レセ電 code.
    fn lookups(self) -> &'static [&'static str; 3] {
        const STORE: [&str; 3] = master_lookups!("");
        const BASELINE: [&str; 3] = master_lookups!("baseline_");
        match self {
            Tables::Store => &STORE,
            Tables::Baseline => &BASELINE,
        }
    }
}

/// The reference names the records' codes need, read in the same transaction.
async fn read_masters(
    tx: &Transaction<'_>,
    tables: Tables,
    institutions: Vec<String>,
    yj: Vec<String>,
    receipts: Vec<String>,
) -> Result<Masters, Attempt> {
    let [institution_sql, drug_sql, product_sql] = tables.lookups();
    // Sent together: one round trip.
    let (institution_rows, drug_rows, product_rows) = match tokio::join!(
        rows(tx, institution_sql, [&institutions]),
        rows(tx, drug_sql, [&yj]),
        rows(tx, product_sql, [&receipts]),
    ) {
        (Ok(i), Ok(d), Ok(p)) => (i, d, p),
        (i, d, p) => return Err(cause([i.err(), d.err(), p.err()])),
    };
    let mut m = Masters::default();
    for row in institution_rows {
        let code: String = col(&row, 0)?;
        m.institutions.insert(
            code.clone(),
            Institution {
                code,
                name: col(&row, 1)?,
                kind: institution_kind(col(&row, 2)?)?,
            },
        );
    }
    for row in drug_rows {
        let (key, drug) = drug_ref(&row)?;
        m.drugs.insert(key, drug);
    }
    for row in product_rows {
        let (key, drug) = drug_ref(&row)?;
        m.products.insert(key, drug);
    }
    Ok(m)
}

/// The names of these codes: from `cache` where read before, the rest from the masters (and
/// then cached). A code the masters lack is not cached, so its name is found once it is added.
async fn names_for(
    tx: &Transaction<'_>,
    cache: &std::sync::RwLock<Masters>,
    institutions: HashSet<String>,
    yj: HashSet<String>,
    receipts: HashSet<String>,
) -> Result<Masters, Attempt> {
    fn split<T: Clone>(
        codes: HashSet<String>,
        cached: &HashMap<String, T>,
        found: &mut HashMap<String, T>,
    ) -> Vec<String> {
        let mut missing = Vec::new();
        for code in codes {
            match cached.get(&code) {
                Some(v) => {
                    found.insert(code, v.clone());
                }
                None => missing.push(code),
            }
        }
        missing
    }
    let mut m = Masters::default();
    let (institutions, yj, receipts) = {
        // A panic elsewhere while holding the lock leaves entries that were each read whole.
        let c = cache.read().unwrap_or_else(|e| e.into_inner());
        (
            split(institutions, &c.institutions, &mut m.institutions),
            split(yj, &c.drugs, &mut m.drugs),
            split(receipts, &c.products, &mut m.products),
        )
    };
    if institutions.is_empty() && yj.is_empty() && receipts.is_empty() {
        return Ok(m);
    }
    let read = read_masters(tx, Tables::Store, institutions, yj, receipts).await?;
    let mut c = cache.write().unwrap_or_else(|e| e.into_inner());
    for (code, v) in read.institutions {
        c.institutions.insert(code.clone(), v.clone());
        m.institutions.insert(code, v);
    }
    for (code, v) in read.drugs {
        c.drugs.insert(code.clone(), v.clone());
        m.drugs.insert(code, v);
    }
    for (code, v) in read.products {
        c.products.insert(code.clone(), v.clone());
        m.products.insert(code, v);
    }
    Ok(m)
}

/// A drug row keyed by its first column; the others are yj, receipt code, name, generic name
/// and strength.
fn drug_ref(row: &tokio_postgres::Row) -> Result<(String, DrugRef), StoreError> {
    let receipt: Option<String> = col(row, 2)?;
    Ok((
        col(row, 0)?,
        DrugRef {
            yj: YjCode::parse(col(row, 1)?).map_err(corrupt)?,
            receipt_code: receipt
                .map(|r| ReceiptDrugCode::parse(&r))
                .transpose()
                .map_err(corrupt)?,
            name: col(row, 3)?,
            generic_name: col(row, 4)?,
            strength: col(row, 5)?,
        },
    ))
}

/// A prepared statement's rows.
async fn rows<const N: usize>(
    tx: &Transaction<'_>,
    sql: &str,
    params: [&(dyn ToSql + Sync); N],
) -> Result<Vec<tokio_postgres::Row>, Attempt> {
    let statement = prepared(tx, sql).await.map_err(attempt)?;
    tx.query(&statement, &params).await.map_err(attempt)
}

/// One record table's rows in `VIEW`, as `json_build_array` wrote them (dates as ISO text).
type VisitRow = (NaiveDate, NaiveDate, String, String, String, String);
type DispensingRow = (
    NaiveDate,
    NaiveDate,
    String,
    f64,
    String,
    i32,
    String,
    Option<String>,
    String,
    Option<String>,
);
type ProcedureRow = (NaiveDate, NaiveDate, String, String, String, String, String);
type DialysisRow = (NaiveDate, NaiveDate, String, i32, String, String);
type HealthCheckRow = (
    NaiveDate,
    NaiveDate,
    f64,
    f64,
    i32,
    i32,
    Option<f64>,
    Option<i32>,
    Option<f64>,
    String,
    String,
);

/// Column `i` of `VIEW`'s row: a JSON array of rows, or null for none. Rows of another shape
/// are bad stored data.
fn json_rows<T: serde::de::DeserializeOwned>(
    row: &tokio_postgres::Row,
    i: usize,
    table: &str,
) -> Result<Vec<T>, StoreError> {
    match col::<Option<&str>>(row, i)? {
        None => Ok(Vec::new()),
        Some(text) => serde_json::from_str(text).map_err(|e| corrupt(format!("{table}: {e}"))),
    }
}

/// The records of `VIEW`'s row, with their names from the masters.
async fn records_of(
    tx: &Transaction<'_>,
    names: &std::sync::RwLock<Masters>,
    row: &tokio_postgres::Row,
) -> Result<MedicalRecords, Attempt> {
    let visits: Vec<VisitRow> = json_rows(row, 16, "visit")?;
    let dispensings: Vec<DispensingRow> = json_rows(row, 17, "dispensing")?;
    let procedures: Vec<ProcedureRow> = json_rows(row, 18, "procedure_record")?;
    let dialysis: Vec<DialysisRow> = json_rows(row, 19, "dialysis")?;
    let health_checks: Vec<HealthCheckRow> = json_rows(row, 20, "health_check")?;

    let mut institutions = HashSet::new();
    let (mut yj, mut receipts) = (HashSet::new(), HashSet::new());
    institutions.extend(visits.iter().map(|v| v.2.clone()));
    for d in &dispensings {
        yj.insert(d.2.clone());
        institutions.insert(d.6.clone());
        institutions.extend(d.7.clone());
        receipts.extend(d.9.clone());
    }
    institutions.extend(procedures.iter().map(|p| p.5.clone()));
    institutions.extend(dialysis.iter().map(|d| d.4.clone()));
    let m = names_for(tx, names, institutions, yj, receipts).await?;

    let mut out = MedicalRecords::default();
    for (service_date, available_on, institution, department, setting, from) in visits {
        out.visits.push(Visit {
            service_date,
            available_on,
            institution: m.institution(&institution),
            department,
            setting: care_setting(&setting)?,
            source: source(&from)?,
        });
    }
    for (
        service_date,
        available_on,
        yj,
        daily_quantity,
        unit,
        days,
        prescriber,
        pharmacy,
        from,
        receipt,
    ) in dispensings
    {
        out.dispensings.push(Dispensing {
            service_date,
            available_on,
            drug: m.dispensed(&yj, receipt.as_deref())?,
            daily_quantity,
            unit,
            days: to_u32(days, "days")?,
            prescriber: m.institution(&prescriber),
            pharmacy: pharmacy.as_deref().map(|c| m.institution(c)),
            source: source(&from)?,
        });
    }
    for (service_date, available_on, kind, code, name, institution, from) in procedures {
        out.procedures.push(Procedure {
            service_date,
            available_on,
            kind: procedure_kind(&kind)?,
            code,
            name,
            institution: m.institution(&institution),
            source: source(&from)?,
        });
    }
    for (service_date, available_on, modality, sessions, institution, from) in dialysis {
        out.dialysis.push(Dialysis {
            service_date,
            available_on,
            modality: dialysis_modality(&modality)?,
            sessions: to_u32(sessions, "sessions")?,
            institution: m.institution(&institution),
            source: source(&from)?,
        });
    }
    for (
        service_date,
        available_on,
        height_cm,
        weight_kg,
        systolic,
        diastolic,
        hba1c_percent,
        ldl,
        egfr,
        urine_protein,
        from,
    ) in health_checks
    {
        out.health_checks.push(HealthCheck {
            service_date,
            available_on,
            height_cm,
            weight_kg,
            systolic_mmhg: to_u16(systolic, "systolic")?,
            diastolic_mmhg: to_u16(diastolic, "diastolic")?,
            hba1c_percent,
            ldl_mg_dl: ldl.map(|v| to_u16(v, "LDL")).transpose()?,
            egfr,
            urine_protein,
            source: source(&from)?,
        });
    }
    Ok(out)
}

/// The share of the node that holds `person` (routed before: a person without one is a bug,
/// refused rather than dropped).
fn share_of<'s, S>(
    node_of: &HashMap<i64, usize>,
    shares: &'s mut [S],
    person: i64,
) -> Result<&'s mut S, StoreError> {
    node_of
        .get(&person)
        .and_then(|n| shares.get_mut(*n))
        .ok_or_else(|| corrupt(format!("person {person} was routed to no node")))
}

/// How a write that spans nodes puts its persons: a load adds them; an import adds them or
/// updates the ones held.
#[derive(Clone, Copy)]
enum PeopleWrite {
    Add,
    AddOrUpdate,
}

/// The record-table rows of a load or an import batch: (person, seq, record, line), the line
/// being where an import read it (0 in a load) for messages.
#[derive(Default)]
struct RecordRows<'a> {
    visits: Vec<(i64, i32, &'a Visit)>,
    dispensings: Vec<(i64, i32, &'a Dispensing, LineNo)>,
    procedures: Vec<(i64, i32, &'a Procedure)>,
    dialysis: Vec<(i64, i32, &'a Dialysis)>,
    health_checks: Vec<(i64, i32, &'a HealthCheck)>,
}

impl<'a> RecordRows<'a> {
    /// A load numbers each person's records of a kind from 0, in order.
    fn of_persons(persons: &'a [PersonRecordSet]) -> Self {
        let mut rows = RecordRows::default();
        for set in persons {
            let (id, r) = (set.person.id.0, &set.records);
            rows.visits
                .extend((0i32..).zip(&r.visits).map(|(s, v)| (id, s, v)));
            rows.dispensings
                .extend((0i32..).zip(&r.dispensings).map(|(s, d)| (id, s, d, 0)));
            rows.procedures
                .extend((0i32..).zip(&r.procedures).map(|(s, p)| (id, s, p)));
            rows.dialysis
                .extend((0i32..).zip(&r.dialysis).map(|(s, d)| (id, s, d)));
            rows.health_checks
                .extend((0i32..).zip(&r.health_checks).map(|(s, h)| (id, s, h)));
        }
        rows
    }

    fn is_empty(&self) -> bool {
        self.visits.is_empty()
            && self.dispensings.is_empty()
            && self.procedures.is_empty()
            && self.dialysis.is_empty()
            && self.health_checks.is_empty()
    }

    /// The persons the rows belong to, with repeats.
    fn persons(&self) -> impl Iterator<Item = i64> + '_ {
        (self.visits.iter().map(|r| r.0))
            .chain(self.dispensings.iter().map(|r| r.0))
            .chain(self.procedures.iter().map(|r| r.0))
            .chain(self.dialysis.iter().map(|r| r.0))
            .chain(self.health_checks.iter().map(|r| r.0))
    }

    /// Each row moved to the share of its person's node (`node_of`).
    fn split_into<P>(
        self,
        node_of: &HashMap<i64, usize>,
        shares: &mut [(P, RecordRows<'a>)],
    ) -> Result<(), StoreError> {
        for r in self.visits {
            share_of(node_of, shares, r.0)?.1.visits.push(r);
        }
        for r in self.dispensings {
            share_of(node_of, shares, r.0)?.1.dispensings.push(r);
        }
        for r in self.procedures {
            share_of(node_of, shares, r.0)?.1.procedures.push(r);
        }
        for r in self.dialysis {
            share_of(node_of, shares, r.0)?.1.dialysis.push(r);
        }
        for r in self.health_checks {
            share_of(node_of, shares, r.0)?.1.health_checks.push(r);
        }
        Ok(())
    }

    fn of_batch(batch: &'a ImportBatch) -> Result<Self, StoreError> {
        let mut rows = RecordRows::default();
        for (line, r) in &batch.records {
            let id = r.person.0;
            let seq = i32::try_from(r.seq).map_err(|_| StoreError::ImportRejected {
                line: *line,
                problem: format!("{}: seq is too large", r.describe()),
            })?;
            match &r.record {
                Record::Visit(v) => rows.visits.push((id, seq, v)),
                Record::Dispensing(d) => rows.dispensings.push((id, seq, d, *line)),
                Record::Procedure(p) => rows.procedures.push((id, seq, p)),
                Record::Dialysis(d) => {
                    to_i32(d.sessions, "sessions").map_err(|_| StoreError::ImportRejected {
                        line: *line,
                        problem: format!("{}: sessions is too large", r.describe()),
                    })?;
                    rows.dialysis.push((id, seq, d))
                }
                Record::HealthCheck(h) => rows.health_checks.push((id, seq, h)),
            }
        }
        Ok(rows)
    }
}

/// Card links (serial, person) by COPY.
async fn copy_cards<'a>(
    tx: &Transaction<'_>,
    tables: Tables,
    cards: impl Iterator<Item = (&'a str, i64)>,
) -> Result<(), Attempt> {
    let prefix = tables.prefix();
    let mut copy = Copy::start(
        tx,
        &format!("{prefix}auth_cert (serial, person_id)"),
        &[Type::TEXT, Type::INT8],
    )
    .await?;
    for (serial, person) in cards {
        copy.row(&[&serial, &person]).await?;
    }
    copy.finish().await?;
    Ok(())
}

/// The import benchmark's baseline (`bench import`): PostgreSQL's own bulk path for the same
/// rows, binary `COPY` into tables with no key or index (in a fresh database) (the reference tables keep their
/// unique codes, which the inserts' `ON CONFLICT` needs), all in one transaction. `next` gives
/// each batch; only the time spent writing is counted. Returns the rows written and that time.
pub async fn baseline_copy<F>(
    url: &str,
    mut next: F,
) -> Result<(u64, std::time::Duration), StoreError>
where
    F: FnMut() -> Option<Result<ImportBatch, String>>,
{
    let fail = |a: Attempt| match a {
        Attempt::Retry(e) => db_err(e),
        Attempt::Fail(e) => e,
    };
    drop(PgProviderStore::connect(url).await?);
    let pool = crate::pool(url)?;
    let mut client = connection(&pool).await?;
    for t in [
        "person",
        "auth_cert",
        "visit",
        "dispensing",
        "procedure_record",
        "dialysis",
        "health_check",
    ] {
        client
            .batch_execute(&format!("CREATE TABLE baseline_{t} (LIKE {t})"))
            .await
            .map_err(db_err)?;
    }
    for t in ["institution", "drug", "drug_product"] {
        client
            .batch_execute(&format!(
                "CREATE TABLE baseline_{t} (LIKE {t} INCLUDING INDEXES)"
            ))
            .await
            .map_err(db_err)?;
    }
    let tx = client.transaction().await.map_err(db_err)?;
    let (mut rows_written, mut spent) = (0u64, std::time::Duration::ZERO);
    while let Some(batch) = next() {
        let batch = batch.map_err(StoreError::Unavailable)?;
        let t0 = std::time::Instant::now();
        copy_people_into(
            &tx,
            &format!("{}{PERSON_COLUMNS}", Tables::Baseline.prefix()),
            batch.persons.iter().map(|(_, p)| p),
        )
        .await
        .map_err(fail)?;
        copy_cards(
            &tx,
            Tables::Baseline,
            batch
                .cards
                .iter()
                .map(|(_, c)| (c.serial.as_str(), c.person.0)),
        )
        .await
        .map_err(fail)?;
        let rows = RecordRows::of_batch(&batch)?;
        insert_masters(&tx, Tables::Baseline, &rows)
            .await
            .map_err(fail)?;
        copy_records(&tx, Tables::Baseline, &rows)
            .await
            .map_err(fail)?;
        spent += t0.elapsed();
        rows_written += batch.len();
    }
    let t0 = std::time::Instant::now();
    tx.commit().await.map_err(db_err)?;
    spent += t0.elapsed();
    Ok((rows_written, spent))
}

/// The institutions, drugs and products the rows name that are not stored yet. A product
/// conflict names the dispensing's line in an import, its person in a load.
async fn insert_masters(
    tx: &Transaction<'_>,
    tables: Tables,
    rows: &RecordRows<'_>,
) -> Result<(), Attempt> {
    let prefix = tables.prefix();
    // Products already stored under the rows' レセ電 codes, then the rows' own, in order.
    let codes: Vec<String> = rows
        .dispensings
        .iter()
        .filter_map(|(_, _, d, _)| d.drug.receipt_code.as_ref().map(|c| c.as_str().to_owned()))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let mut products: HashMap<String, DrugRef> =
        read_masters(tx, tables, Vec::new(), Vec::new(), codes)
            .await?
            .products;
    let mut new_products: Vec<&DrugRef> = Vec::new();
    for (person, _, d, line) in &rows.dispensings {
        let Some(code) = &d.drug.receipt_code else {
            continue;
        };
        match products.get(code.as_str()) {
            Some(known) => {
                if let Some(conflict) = product_conflict(*person, d, known) {
                    return Err(match conflict {
                        StoreError::InvalidRecord { problem, .. } if *line > 0 => {
                            StoreError::ImportRejected {
                                line: *line,
                                problem: format!("dispensing of person {person}: {problem}"),
                            }
                        }
                        other => other,
                    }
                    .into());
                }
            }
            None => {
                products.insert(code.as_str().to_owned(), d.drug.clone());
                new_products.push(&d.drug);
            }
        }
    }
    for d in new_products {
        let code = d.receipt_code.as_ref().map(|c| c.as_str());
        tx.execute(
            &format!(
                "INSERT INTO {prefix}drug_product (receipt_code, yj, name, generic_name, \
                 strength) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (receipt_code) DO NOTHING"
            ),
            &[&code, &d.yj.as_str(), &d.name, &d.generic_name, &d.strength],
        )
        .await
        .map_err(attempt)?;
    }

    // Institutions and drugs the rows name, once each; the first name stored for a code
    // stays (as on SQLite).
    let mut institutions: HashMap<&str, &Institution> = HashMap::new();
    let mut drugs: HashMap<&str, &DrugRef> = HashMap::new();
    let named = rows
        .visits
        .iter()
        .map(|(_, _, v)| &v.institution)
        .chain(rows.dispensings.iter().map(|(_, _, d, _)| &d.prescriber))
        .chain(
            rows.dispensings
                .iter()
                .filter_map(|(_, _, d, _)| d.pharmacy.as_ref()),
        )
        .chain(rows.procedures.iter().map(|(_, _, p)| &p.institution))
        .chain(rows.dialysis.iter().map(|(_, _, d)| &d.institution));
    for i in named {
        institutions.entry(i.code.as_str()).or_insert(i);
    }
    for (_, _, d, _) in &rows.dispensings {
        drugs.entry(d.drug.yj.as_str()).or_insert(&d.drug);
    }
    let (codes, names, kinds): (Vec<&str>, Vec<&str>, Vec<&str>) = institutions
        .values()
        .map(|i| {
            (
                i.code.as_str(),
                i.name.as_str(),
                institution_kind_str(i.kind),
            )
        })
        .collect();
    tx.execute(
        &format!(
            "INSERT INTO {prefix}institution (code, name, kind) SELECT * FROM \
             UNNEST($1::text[], $2::text[], $3::text[]) ON CONFLICT (code) DO NOTHING"
        ),
        &[&codes, &names, &kinds],
    )
    .await
    .map_err(attempt)?;
    let mut yj = Vec::new();
    let mut receipt: Vec<Option<&str>> = Vec::new();
    let (mut name, mut generic, mut strength) = (Vec::new(), Vec::new(), Vec::new());
    for d in drugs.values() {
        yj.push(d.yj.as_str());
        receipt.push(d.receipt_code.as_ref().map(|c| c.as_str()));
        name.push(d.name.as_str());
        generic.push(d.generic_name.as_str());
        strength.push(d.strength.as_str());
    }
    tx.execute(
        &format!(
            "INSERT INTO {prefix}drug (yj, receipt_code, name, generic_name, strength) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) \
             ON CONFLICT (yj) DO NOTHING"
        ),
        &[&yj, &receipt, &name, &generic, &strength],
    )
    .await
    .map_err(attempt)?;
    Ok(())
}

const PERSON_COLUMNS: &str = "person (id, name, name_kana, birth_date, sex, postal_code, \
     prefecture, municipality, street, insurer_number, insurer_name, insured_symbol, \
     insured_number, insured_branch)";
const PERSON_TYPES: [Type; 14] = [
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::DATE,
    Type::INT2,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
];

/// Persons by COPY into `target` (the person table, or the import baseline's).
async fn copy_people_into<'p>(
    tx: &Transaction<'_>,
    target: &str,
    people: impl Iterator<Item = &'p Person>,
) -> Result<(), Attempt> {
    let mut copy = Copy::start(tx, target, &PERSON_TYPES).await?;
    for p in people {
        let sex = i16::from(p.sex.code());
        let [name, kana, t @ ..] = person_texts(p);
        let mut row: Vec<&(dyn ToSql + Sync)> = vec![&p.id.0, &name, &kana, &p.birth_date, &sex];
        row.extend(t.iter().map(|v| v as &(dyn ToSql + Sync)));
        copy.row(&row).await?;
    }
    copy.finish().await?;
    Ok(())
}

async fn copy_people<'p>(
    tx: &Transaction<'_>,
    people: impl Iterator<Item = &'p Person>,
) -> Result<(), Attempt> {
    copy_people_into(tx, PERSON_COLUMNS, people).await
}

/// The record tables by COPY, one stream per table.
async fn copy_records(
    tx: &Transaction<'_>,
    tables: Tables,
    rows: &RecordRows<'_>,
) -> Result<(), Attempt> {
    let prefix = tables.prefix();
    let mut visits = Copy::start(
        tx,
        &format!(
            "{prefix}visit (person_id, service_date, seq, available_on, institution_code, department, \
         setting, source)"
        ),
        &[
            Type::INT8,
            Type::DATE,
            Type::INT4,
            Type::DATE,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
        ],
    )
    .await?;
    for (id, seq, v) in &rows.visits {
        visits
            .row(&[
                id,
                &v.service_date,
                seq,
                &v.available_on,
                &v.institution.code,
                &v.department,
                &care_setting_str(v.setting),
                &v.source.as_str(),
            ])
            .await?;
    }
    visits.finish().await?;

    let mut dispensings = Copy::start(
        tx,
        &format!(
            "{prefix}dispensing (person_id, service_date, seq, available_on, yj, daily_quantity, unit, days, \
         prescriber_code, pharmacy_code, source, receipt_code)"
        ),
        &[
            Type::INT8,
            Type::DATE,
            Type::INT4,
            Type::DATE,
            Type::TEXT,
            Type::FLOAT8,
            Type::TEXT,
            Type::INT4,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
        ],
    )
    .await?;
    for (id, seq, d, _) in &rows.dispensings {
        let days = to_i32(d.days, "days")?;
        let pharmacy = d.pharmacy.as_ref().map(|p| p.code.as_str());
        let receipt = d.drug.receipt_code.as_ref().map(|c| c.as_str());
        dispensings
            .row(&[
                id,
                &d.service_date,
                seq,
                &d.available_on,
                &d.drug.yj.as_str(),
                &d.daily_quantity,
                &d.unit,
                &days,
                &d.prescriber.code,
                &pharmacy,
                &d.source.as_str(),
                &receipt,
            ])
            .await?;
    }
    dispensings.finish().await?;

    let mut procedures = Copy::start(
        tx,
        &format!(
            "{prefix}procedure_record (person_id, service_date, seq, available_on, kind, code, name, \
         institution_code, source)"
        ),
        &[
            Type::INT8,
            Type::DATE,
            Type::INT4,
            Type::DATE,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
        ],
    )
    .await?;
    for (id, seq, p) in &rows.procedures {
        procedures
            .row(&[
                id,
                &p.service_date,
                seq,
                &p.available_on,
                &procedure_kind_str(p.kind),
                &p.code,
                &p.name,
                &p.institution.code,
                &p.source.as_str(),
            ])
            .await?;
    }
    procedures.finish().await?;

    let mut dialysis = Copy::start(
        tx,
        &format!(
            "{prefix}dialysis (person_id, service_date, seq, available_on, modality, sessions, \
         institution_code, source)"
        ),
        &[
            Type::INT8,
            Type::DATE,
            Type::INT4,
            Type::DATE,
            Type::TEXT,
            Type::INT4,
            Type::TEXT,
            Type::TEXT,
        ],
    )
    .await?;
    for (id, seq, d) in &rows.dialysis {
        let sessions = to_i32(d.sessions, "sessions")?;
        dialysis
            .row(&[
                id,
                &d.service_date,
                seq,
                &d.available_on,
                &dialysis_modality_str(d.modality),
                &sessions,
                &d.institution.code,
                &d.source.as_str(),
            ])
            .await?;
    }
    dialysis.finish().await?;

    let mut checks = Copy::start(
        tx,
        &format!(
            "{prefix}health_check (person_id, service_date, seq, available_on, height_cm, weight_kg, \
         systolic_mmhg, diastolic_mmhg, hba1c_percent, ldl_mg_dl, egfr, urine_protein, source)"
        ),
        &[
            Type::INT8,
            Type::DATE,
            Type::INT4,
            Type::DATE,
            Type::FLOAT8,
            Type::FLOAT8,
            Type::INT4,
            Type::INT4,
            Type::FLOAT8,
            Type::INT4,
            Type::FLOAT8,
            Type::TEXT,
            Type::TEXT,
        ],
    )
    .await?;
    for (id, seq, h) in &rows.health_checks {
        let (sys, dia) = (i32::from(h.systolic_mmhg), i32::from(h.diastolic_mmhg));
        let ldl = h.ldl_mg_dl.map(i32::from);
        checks
            .row(&[
                id,
                &h.service_date,
                seq,
                &h.available_on,
                &h.height_cm,
                &h.weight_kg,
                &sys,
                &dia,
                &h.hba1c_percent,
                &ldl,
                &h.egfr,
                &h.urine_protein,
                &h.source.as_str(),
            ])
            .await?;
    }
    checks.finish().await?;
    Ok(())
}

/// One `COPY … FROM STDIN BINARY` into a table, inside the caller's transaction: the bulk
/// path PostgreSQL offers for loads (and the claims import), a stream rather than a statement
/// per row. Never a coordinator's partitioned table: PostgreSQL 15 sends a COPY's rows to a
/// foreign partition one `INSERT` each, and postgres_fdw would commit each node apart; those
/// rows go to their nodes directly (`commit_on_nodes`).
struct Copy {
    writer: std::pin::Pin<Box<BinaryCopyInWriter>>,
}

impl Copy {
    async fn start(
        tx: &Transaction<'_>,
        table_and_columns: &str,
        types: &[Type],
    ) -> Result<Copy, Attempt> {
        let sink = tx
            .copy_in(&format!("COPY {table_and_columns} FROM STDIN BINARY"))
            .await
            .map_err(attempt)?;
        Ok(Copy {
            writer: Box::pin(BinaryCopyInWriter::new(sink, types)),
        })
    }

    async fn row(&mut self, values: &[&(dyn ToSql + Sync)]) -> Result<(), Attempt> {
        self.writer.as_mut().write(values).await.map_err(attempt)
    }

    async fn finish(mut self) -> Result<u64, Attempt> {
        self.writer.as_mut().finish().await.map_err(attempt)
    }
}

impl ProviderStore for PgProviderStore {
    async fn access_records(&self, request: AccessRequest) -> Result<AccessGranted, StoreError> {
        retrying(|| self.access_once(&request)).await
    }

    async fn record_hospital_read(
        &self,
        report: HospitalReadReport,
    ) -> Result<HospitalReadLogged, StoreError> {
        retrying(|| self.hospital_read_once(&report)).await
    }

    async fn authenticate(
        &self,
        org_id: &str,
        secret: &str,
    ) -> Result<Option<Organisation>, StoreError> {
        let client = connection(&self.pool).await?;
        let row = client
            .query_opt(
                "SELECT name, secret_sha256, disabled FROM organisation WHERE id = $1",
                &[&org_id],
            )
            .await
            .map_err(db_err)?;
        let Some(row) = row else { return Ok(None) };
        let (name, hash, disabled): (String, String, bool) =
            (col(&row, 0)?, col(&row, 1)?, col(&row, 2)?);
        Ok(
            (!disabled && secret_matches(secret, &hash)).then(|| Organisation {
                id: org_id.to_owned(),
                name,
            }),
        )
    }

    async fn organisation(&self, org_id: &str) -> Result<Option<Organisation>, StoreError> {
        let client = connection(&self.pool).await?;
        let row = client
            .query_opt(
                "SELECT name FROM organisation WHERE id = $1 AND NOT disabled",
                &[&org_id],
            )
            .await
            .map_err(db_err)?;
        row.map(|r| {
            Ok(Organisation {
                id: org_id.to_owned(),
                name: col(&r, 0)?,
            })
        })
        .transpose()
    }

    async fn organisation_for_certificate(
        &self,
        org_id: &str,
        public_key_sha256: &str,
    ) -> Result<Option<Organisation>, StoreError> {
        let key = public_key_sha256.to_ascii_lowercase();
        let client = connection(&self.pool).await?;
        let row = client
            .query_opt(
                "SELECT name FROM organisation WHERE id = $1 AND NOT disabled AND NOT EXISTS \
                 (SELECT 1 FROM organisation_certificate_revocation \
                  WHERE public_key_sha256 = $2)",
                &[&org_id, &key],
            )
            .await
            .map_err(db_err)?;
        row.map(|r| {
            Ok(Organisation {
                id: org_id.to_owned(),
                name: col(&r, 0)?,
            })
        })
        .transpose()
    }

    async fn revoke_organisation_certificate(
        &self,
        org_id: &str,
        public_key_sha256: &str,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let key = public_key_sha256.to_ascii_lowercase();
        let mut client = connection(&self.pool).await?;
        let tx = client.transaction().await.map_err(db_err)?;
        // The organisation's row is locked, so it cannot go between the check and the write.
        if tx
            .query_opt(
                "SELECT 1 FROM organisation WHERE id = $1 FOR NO KEY UPDATE",
                &[&org_id],
            )
            .await
            .map_err(db_err)?
            .is_none()
        {
            return Ok(false);
        }
        tx.execute(
            "INSERT INTO organisation_certificate_revocation \
             (public_key_sha256, organisation_id, revoked_at, reason) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (public_key_sha256) DO NOTHING",
            &[&key, &org_id, &chrono::Utc::now().to_rfc3339(), &reason],
        )
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }

    async fn set_organisation_disabled(
        &self,
        org_id: &str,
        disabled: bool,
    ) -> Result<bool, StoreError> {
        let client = connection(&self.pool).await?;
        let n = client
            .execute(
                "UPDATE organisation SET disabled = $1 WHERE id = $2",
                &[&disabled, &org_id],
            )
            .await
            .map_err(db_err)?;
        Ok(n == 1)
    }

    async fn add_organisation(
        &self,
        org: Organisation,
        secret_hash: String,
    ) -> Result<(), StoreError> {
        let client = connection(&self.pool).await?;
        let n = client
            .execute(
                "INSERT INTO organisation (id, name, secret_sha256, disabled) \
                 VALUES ($1, $2, $3, false) ON CONFLICT (id) DO NOTHING",
                &[&org.id, &org.name, &secret_hash],
            )
            .await
            .map_err(db_err)?;
        if n == 0 {
            return Err(StoreError::OrganisationExists(org.id));
        }
        Ok(())
    }

    async fn revoke_serial(&self, serial_hex: &str, reason: &str) -> Result<(), StoreError> {
        let client = connection(&self.pool).await?;
        client
            .execute(
                "INSERT INTO revoked_cert (serial, revoked_at, reason) VALUES ($1, $2, $3) \
                 ON CONFLICT (serial) DO NOTHING",
                &[&serial_hex, &chrono::Utc::now().to_rfc3339(), &reason],
            )
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn load_persons(&self, persons: Vec<PersonRecordSet>) -> Result<(), StoreError> {
        myna_store::check_persons(&persons)?;
        retrying(|| self.load_once(&persons)).await
    }

    async fn import_batch(&self, batch: ImportBatch) -> Result<Imported, StoreError> {
        myna_store::import::check(&batch)?;
        match retrying(|| self.import_once(&batch)).await {
            Err(StoreError::InvalidRecord { person: 0, problem }) if problem == RECORD_HELD => {
                Err(self.held_record(&batch).await?)
            }
            other => other,
        }
    }

    async fn dataset_info(&self) -> Result<DatasetInfo, StoreError> {
        let client = connection(&self.pool).await?;
        let mut values = HashMap::new();
        for row in client
            .query("SELECT key, value FROM dataset_info", &[])
            .await
            .map_err(db_err)?
        {
            values.insert(col::<String>(&row, 0)?, col::<String>(&row, 1)?);
        }
        let date = |k: &str| -> Result<Option<NaiveDate>, StoreError> {
            values
                .get(k)
                .map(|s| myna_store::columns::date(s))
                .transpose()
        };
        Ok(DatasetInfo {
            persons: values
                .get("persons")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
            seed: values.get("seed").and_then(|s| s.parse().ok()),
            generated_as_of: date("generated_as_of")?,
            claims_through: date("claims_through")?,
        })
    }

    async fn set_dataset_info(&self, info: DatasetInfo) -> Result<(), StoreError> {
        let mut client = connection(&self.pool).await?;
        let tx = client.transaction().await.map_err(db_err)?;
        let values = [
            ("persons", Some(info.persons.to_string())),
            ("seed", info.seed.map(|s| s.to_string())),
            (
                "generated_as_of",
                info.generated_as_of.map(|d| d.to_string()),
            ),
            ("claims_through", info.claims_through.map(|d| d.to_string())),
        ];
        for (key, value) in values {
            match value {
                Some(v) => tx.execute(PUT_DATASET_INFO, &[&key, &v]).await,
                None => {
                    tx.execute("DELETE FROM dataset_info WHERE key = $1", &[&key])
                        .await
                }
            }
            .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)
    }

    async fn set_claims_through(&self, date: NaiveDate) -> Result<(), StoreError> {
        let client = connection(&self.pool).await?;
        client
            .execute(PUT_DATASET_INFO, &[&"claims_through", &date.to_string()])
            .await
            .map(drop)
            .map_err(db_err)
    }

    /// Streams the log in (person, seq) order and verifies each person's chain on its own.
    async fn verify_access_log(&self) -> Result<ChainReport, StoreError> {
        Ok(self.access_log_walk(Default::default()).await?.report)
    }

    /// One statement, so one snapshot: the heads kept are the ends of the chains verified.
    async fn access_log_walk(
        &self,
        places: std::collections::BTreeMap<i64, i64>,
    ) -> Result<ChainWalk, StoreError> {
        let mut client = connection(&self.pool).await?;
        let tx = client.transaction().await.map_err(db_err)?;
        tx.batch_execute(crate::WALK_LIMITS).await.map_err(db_err)?;
        let stream = tx
            .query_raw(
                &format!("SELECT {ACCESS_COLUMNS} FROM access_log ORDER BY person_id, seq"),
                std::iter::empty::<i64>(),
            )
            .await
            .map_err(db_err)?;
        pin_mut!(stream);
        let mut v = PartitionedVerifier::keeping_heads(places);
        // Past a break the walk goes on to the next person's chain, so the report names every
        // person whose chain is broken, not only the first.
        let mut first: Option<(u64, i64, ChainBreak)> = None;
        let mut broken_chains: Vec<i64> = Vec::new();
        // The chain whose entries have had their id in the hash: after one, no entry of that
        // chain may be without it (ids were chained from one version on, for good).
        let mut ids_chained_in: Option<i64> = None;
        while let Some(row) = stream.next().await {
            let row = row.map_err(db_err)?;
            let (at, decoded) = chained_from_row(&row)?;
            if broken_chains.last() == Some(&at.partition) {
                continue;
            }
            let decoded = decoded
                .map_err(|problem| ChainBreak::Unreadable {
                    seq: at.seq,
                    problem,
                })
                .and_then(|e| match e.entry.access_id {
                    Some(_) => {
                        ids_chained_in = Some(at.partition);
                        Ok(e)
                    }
                    None if ids_chained_in == Some(at.partition) => {
                        Err(ChainBreak::Content { seq: at.seq })
                    }
                    None => Ok(e),
                });
            let checked = v
                .begins(at.partition, at.seq)
                .and_then(|_| v.push(decoded.as_ref().map_err(Clone::clone)));
            if let Err(b) = checked {
                broken_chains.push(at.partition);
                first.get_or_insert((v.entries(), at.partition, b));
            }
        }
        if let Some((verified, chain, first_break)) = first {
            // One line, however many chains broke (a signer walks on a schedule).
            tracing::error!(
                person = chain,
                %first_break,
                chains = broken_chains.len(),
                "access log broken"
            );
            return Ok(ChainWalk {
                report: ChainReport::Broken {
                    verified,
                    first_break,
                    chain: Some(chain),
                    broken_chains,
                },
                heads: Vec::new(),
                found: Default::default(),
            });
        }
        // One chain's head is the log's; several are checkpointed by their digest.
        let head_hash = match (v.last(), v.partitions()) {
            (Some((_, (_, h))), 1) => Some(hex::encode(h)),
            _ => None,
        };
        let report = ChainReport::Intact {
            entries: v.entries(),
            partitions: v.partitions(),
            head_hash,
        };
        let (heads, found) = v.into_heads();
        Ok(ChainWalk {
            report,
            heads,
            found,
        })
    }

    async fn access_log_hash(&self, at: ChainPosition) -> Result<Option<Hash32>, StoreError> {
        let client = connection(&self.pool).await?;
        let row = client
            .query_opt(
                "SELECT hash FROM access_log WHERE person_id = $1 AND seq = $2",
                &[&at.partition, &at.seq],
            )
            .await
            .map_err(db_err)?;
        row.map(|r| hash32(col::<&[u8]>(&r, 0)?, format!("access log {at:?}")).map_err(corrupt))
            .transpose()
    }

    async fn access_log_for(
        &self,
        person: PersonId,
        limit: u32,
    ) -> Result<Vec<(ChainPosition, ChainedEntry)>, StoreError> {
        let client = connection(&self.pool).await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {ACCESS_COLUMNS} FROM access_log WHERE person_id = $1 \
                     ORDER BY seq DESC LIMIT $2"
                ),
                &[&person.0, &i64::from(limit)],
            )
            .await
            .map_err(db_err)?;
        rows.iter()
            .map(|row| {
                let (at, decoded) = chained_from_row(row)?;
                decoded
                    .map(|e| (at, e))
                    .map_err(|problem| corrupt(format!("access-log entry {at:?}: {problem}")))
            })
            .collect()
    }

    async fn card_holder(&self, serial_hex: &str) -> Result<PersonId, StoreError> {
        let client = connection(&self.pool).await?;
        let rows = client
            .query(
                "SELECT a.person_id, r.revoked_at FROM auth_cert a \
                 LEFT JOIN revoked_cert r ON r.serial = a.serial WHERE a.serial = $1",
                &[&serial_hex],
            )
            .await
            .map_err(db_err)?;
        let Some(row) = rows.first() else {
            return Err(StoreError::UnknownSerial(serial_hex.to_owned()));
        };
        if let Some(revoked_at) = col::<Option<String>>(row, 1)? {
            return Err(StoreError::Revoked {
                serial: serial_hex.to_owned(),
                revoked_at,
            });
        }
        Ok(PersonId(col(row, 0)?))
    }

    async fn organisation_names(
        &self,
    ) -> Result<std::collections::BTreeMap<String, String>, StoreError> {
        let client = connection(&self.pool).await?;
        let rows = client
            .query("SELECT id, name FROM organisation", &[])
            .await
            .map_err(db_err)?;
        rows.iter()
            .map(|row| Ok((col(row, 0)?, col(row, 1)?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn of_statements_sent_together_the_first_real_failure_is_reported() {
        let fail = |m: &str| Some(Attempt::Fail(StoreError::Unavailable(m.into())));
        let picked = cause([
            fail("current transaction is aborted (25P02)"),
            None,
            fail("terminating connection (57P01)"),
        ]);
        assert!(
            matches!(&picked, Attempt::Fail(StoreError::Unavailable(m)) if m.contains("57P01"))
        );
        let picked = cause([fail("current transaction is aborted (25P02)")]);
        assert!(
            matches!(&picked, Attempt::Fail(StoreError::Unavailable(m)) if m.contains("25P02"))
        );
    }
}
