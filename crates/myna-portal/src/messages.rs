//! What the patient reads when signing in fails, in Japanese and English: one message per
//! card failure and per provider code (exhaustive, so a new code is a compile error here until
//! it has its words).

use myna_reader::ReadFailure;
use myna_reader::sign::SignFailure;
use myna_wire::provider::ProviderErrorCode;

/// A message in both of the portal's languages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub ja: String,
    pub en: String,
}

fn m(ja: impl Into<String>, en: impl Into<String>) -> Message {
    Message {
        ja: ja.into(),
        en: en.into(),
    }
}

/// The card or its PIN.
pub fn sign_failure(f: &SignFailure) -> Message {
    match f {
        SignFailure::WrongPin { remaining } => m(
            format!("暗証番号が違います。あと{remaining}回間違えるとロックされます。"),
            format!(
                "Wrong PIN. {remaining} {} left before the card locks.",
                if *remaining == 1 { "try" } else { "tries" }
            ),
        ),
        SignFailure::Locked => m(
            "暗証番号がロックされています。お住まいの市区町村の窓口で初期化の手続きをしてください。",
            "The PIN is locked. Your municipal office can reset it.",
        ),
        SignFailure::Card(read) => read_failure(read),
    }
}

fn read_failure(f: &ReadFailure) -> Message {
    match f {
        ReadFailure::NoReader => m(
            "カードリーダーが見つかりません。接続を確かめてください。",
            "No card reader was found. Check that it is connected.",
        ),
        ReadFailure::NoCard => m(
            "カードが置かれていません。マイナンバーカードをカードリーダーに置いてください。",
            "No card on the reader. Place your My Number card on it.",
        ),
        ReadFailure::CardRemoved => m(
            "読み取り中にカードが離れました。もう一度置いてください。",
            "The card left the reader. Place it again.",
        ),
        ReadFailure::NotMynaCard => m(
            "マイナンバーカードではありません。",
            "This is not a My Number card.",
        ),
        ReadFailure::SmartphoneToken { .. } => m(
            "スマートフォンの電子証明書には対応していません。カードを置いてください。",
            "Smartphone certificates are not supported. Use the card.",
        ),
        ReadFailure::Blocked => m(
            "カードの電子証明書が使えない状態です。市区町村の窓口にご相談ください。",
            "The card's certificate cannot be used. Ask your municipal office.",
        ),
        ReadFailure::Timeout => m(
            "カードが応答しません。置き直してください。",
            "The card did not answer. Place it again.",
        ),
        ReadFailure::Unexpected { .. } => m(
            "カードを読み取れませんでした。置き直してください。",
            "The card could not be read. Place it again.",
        ),
    }
}

/// The provider's refusal.
pub fn provider_refusal(code: ProviderErrorCode) -> Message {
    use ProviderErrorCode as C;
    match code {
        C::CertificateExpired => m(
            "利用者証明用電子証明書の有効期限が切れています。市区町村の窓口で更新してください。",
            "The card's certificate has expired. Renew it at your municipal office.",
        ),
        C::CertificateRevoked => m(
            "この電子証明書は失効しています。",
            "This card's certificate has been revoked.",
        ),
        C::CertificateMalformed
        | C::CertificateUnsupported
        | C::CertificateUntrusted
        | C::CertificateNotYetValid
        | C::CertificateWrongKeyUsage => m(
            "このカードの電子証明書では確認できません。",
            "This card's certificate cannot be accepted.",
        ),
        C::UnknownSerial => m(
            "このカードは健康保険証として利用登録されていないか、電子証明書の更新がまだ反映されていません。",
            "This card is not registered as a health insurance card, or its renewed certificate is not linked yet.",
        ),
        C::ChallengeExpired => m(
            "時間がたったため確認できませんでした。もう一度お試しください。",
            "The sign-in took too long. Please try again.",
        ),
        C::ChallengeUsed | C::ChallengeInvalid => m(
            "確認できませんでした。もう一度お試しください。",
            "The sign-in could not be completed. Please try again.",
        ),
        C::SignatureInvalid => m(
            "カードの署名を確認できませんでした。もう一度お試しください。",
            "The card's signature could not be verified. Please try again.",
        ),
        C::Unavailable | C::Internal => m(
            "サービスが一時的に利用できません。しばらくしてからお試しください。",
            "The service is temporarily unavailable. Please try later.",
        ),
        C::Unauthenticated
        | C::ViewerOrganisationMismatch
        | C::UnknownAccess
        | C::HospitalReadLimit
        | C::ReadTimeAhead
        | C::MalformedRequest
        | C::PayloadTooLarge
        | C::UnsupportedMediaType
        | C::Unknown => m(
            "確認できませんでした。アプリを最新にしてお試しください。",
            "The request was refused. Update the app and try again.",
        ),
    }
}

/// The provider could not be reached.
pub fn offline() -> Message {
    m(
        "サービスに接続できません。インターネット接続を確かめてください。",
        "The service cannot be reached. Check the internet connection.",
    )
}

/// Another sign-in was running (a second click); this one sent nothing to the card.
pub fn busy() -> Message {
    m(
        "前の操作を処理していました（この操作ではカードに何も送っていません）。カードの状態を確かめて、もう一度入力してください。",
        "An earlier sign-in was still running (nothing was sent to the card for this one). Check the card below and enter the PIN again.",
    )
}

/// A PIN that is not four digits (nothing was sent to the card).
pub fn not_four_digits() -> Message {
    m(
        "暗証番号は4桁の数字です（カードには送っていません）。",
        "The PIN is four digits (nothing was sent to the card).",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_provider_code_has_words_in_both_languages() {
        for code in ProviderErrorCode::ALL {
            let msg = provider_refusal(*code);
            assert!(!msg.ja.is_empty() && !msg.en.is_empty(), "{code:?}");
        }
        let wrong = sign_failure(&SignFailure::WrongPin { remaining: 1 });
        assert!(wrong.ja.contains("あと1回"), "{}", wrong.ja);
        assert!(wrong.en.contains("1 try left"), "{}", wrong.en);
    }
}
