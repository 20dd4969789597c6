//! The seeded default tenant: 川崎市消防局 (Kawasaki City Fire Bureau), its 7 ward stations and
//! 31 ambulance teams (reference: maina-kyukyu-facts §6.1). Station names are the real ward
//! stations; team names are plausible (ward or branch-office name plus a number), not the
//! bureau's official call signs.

use myna_store::ems::{AccountSeed, BureauSeed, Role};

pub const KAWASAKI_CODE: &str = "kawasaki-fd";
pub const KAWASAKI_NAME: &str = "川崎市消防局";

/// Station → teams. 31 teams in all.
pub const KAWASAKI_TEAMS: [(&str, &[&str]); 7] = [
    (
        "川崎消防署",
        &["川崎救急1", "川崎救急2", "大師救急", "田島救急", "臨港救急"],
    ),
    (
        "幸消防署",
        &["幸救急1", "幸救急2", "日吉救急", "南河原救急"],
    ),
    (
        "中原消防署",
        &[
            "中原救急1",
            "中原救急2",
            "小杉救急",
            "住吉救急",
            "中原日勤救急",
        ],
    ),
    (
        "高津消防署",
        &["高津救急1", "高津救急2", "久地救急", "高津日勤救急"],
    ),
    (
        "宮前消防署",
        &["宮前救急1", "宮前救急2", "有馬救急", "犬蔵救急"],
    ),
    (
        "多摩消防署",
        &["多摩救急1", "多摩救急2", "稲田救急", "菅救急"],
    ),
    (
        "麻生消防署",
        &[
            "麻生救急1",
            "麻生救急2",
            "柿生救急",
            "百合丘救急",
            "王禅寺救急",
        ],
    ),
];

/// The crew login of the `n`th team (1-based, in `KAWASAKI_TEAMS` order): `crew01` … `crew31`.
pub fn crew_login(n: usize) -> String {
    format!("crew{n:02}")
}

/// The staff login of a registry hospital: `er-` and its id, e.g. `er-kawasaki-municipal`.
pub fn hospital_login(hospital_id: &str) -> String {
    format!("er-{hospital_id}")
}

pub const DISPATCHER_LOGIN: &str = "dispatcher";
pub const ADMIN_LOGIN: &str = "admin";
pub const PRIVACY_LOGIN: &str = "privacy";

/// Kawasaki's seed: one dispatcher, one admin, one privacy officer and one crew account per
/// team. `hash` turns the
/// account's login into its stored password hash (the caller decides the passwords).
pub fn kawasaki(
    provider_url: &str,
    provider_credential_file: &str,
    mut hash: impl FnMut(Role, &str) -> String,
) -> BureauSeed {
    let mut accounts = vec![
        AccountSeed {
            login: DISPATCHER_LOGIN.into(),
            display_name: "指令員（デモ）".into(),
            role: Role::Dispatcher,
            team: None,
            hospital: None,
            password_hash: hash(Role::Dispatcher, DISPATCHER_LOGIN),
        },
        AccountSeed {
            login: ADMIN_LOGIN.into(),
            display_name: "システム管理者".into(),
            role: Role::Admin,
            team: None,
            hospital: None,
            password_hash: hash(Role::Admin, ADMIN_LOGIN),
        },
        AccountSeed {
            login: PRIVACY_LOGIN.into(),
            display_name: "個人情報保護責任者".into(),
            role: Role::PrivacyOfficer,
            team: None,
            hospital: None,
            password_hash: hash(Role::PrivacyOfficer, PRIVACY_LOGIN),
        },
    ];
    let teams = KAWASAKI_TEAMS
        .iter()
        .flat_map(|(_, teams)| teams.iter())
        .enumerate();
    for (i, team) in teams {
        let login = crew_login(i + 1);
        accounts.push(AccountSeed {
            password_hash: hash(Role::Crew, &login),
            display_name: format!("{team} 隊長"),
            login,
            role: Role::Crew,
            team: Some((*team).to_owned()),
            hospital: None,
        });
    }
    // The registry is compiled-in data that its own tests load; one account per hospital.
    let hospitals = myna_domain::hospitals::Registry::shared()
        .map(|r| r.hospitals().to_vec())
        .unwrap_or_default();
    for h in hospitals {
        let login = hospital_login(&h.id);
        accounts.push(AccountSeed {
            password_hash: hash(Role::Hospital, &login),
            display_name: format!("{} 救急外来", h.name),
            login,
            role: Role::Hospital,
            team: None,
            hospital: Some(h.id),
        });
    }
    BureauSeed {
        code: KAWASAKI_CODE.into(),
        name: KAWASAKI_NAME.into(),
        provider_url: provider_url.into(),
        provider_credential_file: provider_credential_file.into(),
        view_window_s: myna_domain::incident::DEFAULT_VIEW_WINDOW.num_seconds(),
        patient_secret: myna_domain::patient::PatientSecret::from_bytes(myna_web::random_secret()),
        stations: KAWASAKI_TEAMS
            .iter()
            .map(|(s, t)| ((*s).to_owned(), t.iter().map(|x| (*x).to_owned()).collect()))
            .collect(),
        accounts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kawasaki_has_seven_stations_and_thirty_one_teams() {
        let seed = kawasaki("http://p", "t", |_, _| String::new());
        assert_eq!(seed.stations.len(), 7);
        let teams: Vec<&String> = seed.stations.iter().flat_map(|(_, t)| t).collect();
        assert_eq!(teams.len(), 31);
        let mut unique = teams.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 31, "team names are unique");
        let hospitals = myna_domain::hospitals::Registry::shared()
            .unwrap()
            .hospitals()
            .len();
        assert_eq!(
            seed.accounts.len(),
            34 + hospitals,
            "a dispatcher, an admin, a privacy officer, 31 crews, one account per hospital"
        );
        assert!(seed.accounts.iter().any(|a| a.role == Role::PrivacyOfficer
            && a.login == PRIVACY_LOGIN
            && a.team.is_none()
            && a.hospital.is_none()));
        assert!(seed.accounts.iter().any(|a| a.role == Role::Hospital
            && a.hospital.as_deref() == Some("kawasaki-municipal")
            && a.login == "er-kawasaki-municipal"));
        assert_eq!(seed.accounts[3].login, "crew01");
        assert_eq!(seed.accounts[3].team.as_deref(), Some("川崎救急1"));
    }
}
