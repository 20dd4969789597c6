//! What the crew reads when ems refuses: one Japanese message per `ErrorCode`.

use myna_wire::terminal::ErrorCode;

/// The crew-facing message for an `ems` error code. Exhaustive: a new code is a compile error
/// here until it has its message.
pub fn crew_message(code: ErrorCode) -> &'static str {
    use ErrorCode as C;
    match code {
        C::PersonNotFound => {
            "該当する加入者が見つかりません（保険証利用登録がないカードの可能性があります）。口頭で聴取してください。"
        }
        C::CardRejected => {
            "このカードの証明書は使えません（失効・期限切れ等）。口頭で聴取してください。"
        }
        C::WrongTeam => "この事案は他の隊に指令されています。この端末では閲覧できません。",
        C::TerminalCertificateRequired => {
            "この端末には登録済みの証明書がありません。管理者に端末登録を依頼してください。"
        }
        C::UnknownBureau => "その消防本部はこの ems に登録されていません。",
        C::TerminalCertificateExpired => {
            "この端末の証明書の有効期限が切れています。管理者に端末登録をやり直してもらってください。"
        }
        C::InvitationInvalid => {
            "招待コードが違うか、使用済みか、期限切れです。管理者に新しい招待コードを発行してもらってください。"
        }
        C::CertificateRequestInvalid => {
            "端末登録の申請データが不正です。もう一度申請してください。"
        }
        C::TooManyEnrollments => "承認待ちの端末登録申請が多すぎます。管理者に連絡してください。",
        C::EnrollmentUnknown => "その端末登録申請は見つかりません。もう一度申請してください。",
        C::EnrollmentUnavailable => {
            "この ems は端末登録を受け付けていません（端末用CAが設定されていません）。"
        }
        C::IncidentClosed => "事案は終了しています。",
        C::NotAssigned => "この事案はまだ指令されていません。",
        C::WindowPassed => "閲覧できる時間を過ぎています。",
        C::NoConsent | C::IdentityNotConfirmed => {
            "このカードの本人確認と同意（または同意なしの理由）を先に記録してください。"
        }
        C::ConsentNotForThisCard => {
            "記録した本人確認・同意は別のカードのものです。このカードの本人について確認し直してください。"
        }
        C::ConsentWithdrawn => "同意が撤回されています。この傷病者の情報は閲覧できません。",
        C::ConsentRefused => "同意を拒否されています。この傷病者の情報は閲覧できません。",
        C::UnknownPatient => "この事案にその傷病者はいません。",
        C::PhaseRepeated => "この時刻はすでに記録されています。",
        C::PhaseOutOfOrder => "この時刻は順序が合わないため記録できません。",
        C::OutcomeRepeated => "マイナ救急の結果はすでに記録されています。",
        C::InquiryReason => "受入不可の場合は理由を選んでください。",
        C::UnknownHospital => "その病院は登録されていません。",
        C::VitalsOutOfRange => "バイタルの値が範囲外です。もう一度選んでください。",
        C::DestinationNotAccepted => "受入可と回答した病院だけを搬送先にできます。",
        C::DestinationAfterHandoff => "引継ぎ後は搬送先を変えられません。",
        C::DispatcherOnly => "事案の作成と指令は指令台が行います。",
        C::NotDestination => "この事案の搬送先ではありません。",
        C::NotArrived => "病着の記録の後に引継ぎできます。",
        C::HandoffRepeated => "引継ぎは受領済みです。",
        C::NotAHospitalEvent => "引継ぎの受領は病院の職員だけが記録します。",
        C::ReceiverName => "受領者の氏名を入力してください。",
        C::DeviceTimeAhead | C::DeviceTimeBeforeCreation | C::DeviceTimeBeforePrevious => {
            "端末の時計がずれているため記録できませんでした。時刻設定を確認してください。"
        }
        C::ProviderUnavailable => "全国の医療情報サービスに接続できません。自動で再試行します。",
        C::StorageUnavailable => "消防本部のサーバーが一時的に使えません。自動で再試行します。",
        C::ReportUnavailable => "報告書を作成できませんでした。",
        C::TerminalRevoked => "この端末は失効しています。管理者に連絡してください。",
        C::TerminalUnknown => "この端末は登録されていません。管理者に連絡してください。",
        C::CrewSignedOut => "サインインし直してください（勤務交代・期限切れ）。",
        C::BadCredentials => "ユーザーIDまたはパスワードが違います。",
        C::AccountLocked => {
            "ログインの失敗が続いたため、このユーザーIDはロックされています。時間をおくか、指令台の管理者に解除を依頼してください。"
        }
        C::TooManyAttempts => "ログインの試行が多すぎます。少し待ってからもう一度お試しください。",
        C::Busy => "サーバーが混み合っています。もう一度お試しください。",
        C::Forbidden | C::NotACrewPhase | C::NotACrewEvent | C::NotCreatedFirst => {
            "この操作は端末からは行えません。"
        }
        C::IncidentNotFound => "事案が見つかりません。",
        C::IdempotencyKeyReused
        | C::MalformedRequest
        | C::PayloadTooLarge
        | C::ProviderRefused
        | C::Unknown => "処理できませんでした。もう一度操作してください。",
    }
}
