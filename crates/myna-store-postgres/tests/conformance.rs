#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The shared store conformance suites on a real PostgreSQL server, each test on a fresh
//! database.

/// `suite!(module, Store; tests…)`: one test per suite function, on a fresh database.
macro_rules! suite {
    ($suite:ident, $store:ty; $($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let db = myna_store_postgres::testing::TestDb::create(stringify!($name))
                .await
                .unwrap();
            let store = <$store>::connect(&db.url).await.unwrap();
            myna_store::$suite::$name(store).await;
            db.drop_now().await.unwrap();
        }
    )*};
}

mod provider {
    suite!(testsuite, myna_store_postgres::PgProviderStore;
        access_returns_records_and_logs,
        products_sharing_a_yj_code_keep_their_own_names,
        summary_view_reads_within_its_windows,
        refused_access_writes_nothing,
        long_supplies_are_read_and_impossible_ones_refused,
        organisations_authenticate,
        a_revoked_organisation_certificate_is_refused_and_its_others_are_not,
        concurrent_accesses_chain_correctly,
        dataset_info_round_trips,
    );
}

mod ems {
    suite!(ems_testsuite, myna_store_postgres::PgEmsStore;
        a_kawasaki_shaped_seed_gives_31_teams_at_their_stations_and_a_second_seed_is_refused,
        a_seed_that_fails_half_way_leaves_no_bureau_behind,
        one_bureau_never_reads_or_writes_another_bureaus_incidents,
        one_bureau_cannot_revoke_or_register_terminals_of_another,
        accounts_and_passwords_are_per_bureau,
        the_same_key_and_kind_twice_is_one_event_answered_as_a_duplicate,
        the_same_key_with_a_different_kind_is_refused_as_key_reused,
        a_phase_before_any_assignment_is_refused_as_not_assigned,
        nothing_is_appended_after_closed,
        a_crew_event_is_refused_once_the_incident_went_to_another_team,
        consent_for_a_patient_whose_face_was_not_confirmed_is_refused,
        after_a_withdrawal_that_patients_face_check_and_consent_are_refused,
        device_times_ahead_of_the_server_before_creation_or_before_the_previous_tap_are_refused,
        a_late_tap_keeps_its_device_time,
        view_records_keep_their_patient_and_the_chain_verifies,
        an_expired_session_is_not_returned,
        a_new_password_ends_that_accounts_sessions_only,
        failed_sign_ins_lock_an_account_of_one_bureau_until_the_lock_ends_or_an_admin_clears_it,
        revoking_a_terminal_ends_the_sessions_bound_to_it_only,
        hospital_accounts_carry_their_hospital_and_statuses_are_per_bureau,
        handoff_copies_are_kept_per_incident_patient_and_view_and_per_bureau,
        handoff_copies_are_purged_once_no_hospital_may_read_them,
        an_enrollment_needs_an_open_invitation_of_its_bureau_and_uses_it_up,
        open_invitations_are_listed_per_bureau_and_a_cancelled_one_files_nothing,
        an_enrollment_is_approved_once_by_its_own_bureau_into_a_certificate_bound_terminal,
        enrollment_requests_are_capped_per_bureau_and_old_ones_lapse,
    );
}
