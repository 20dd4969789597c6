//! Why a card read failed, in words a crew member in a moving ambulance can act on.

use serde::Serialize;

/// Every failure the crew can meet between placing a card and seeing its certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReadFailure {
    #[error("no card reader is connected")]
    NoReader,
    #[error("no card on the reader")]
    NoCard,
    #[error("the card was removed during the read")]
    CardRemoved,
    #[error("not a My Number card")]
    NotMynaCard,
    /// スマホ用電子証明書: a smartphone token answers the same application.
    #[error("smartphone certificate ({label}), not a card")]
    SmartphoneToken { label: String },
    #[error("the card's JPKI application is blocked")]
    Blocked,
    #[error("the card did not answer in time")]
    Timeout,
    #[error("unexpected card error: {detail}")]
    Unexpected { detail: String },
}

/// A message for the crew: what happened, and the next action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CrewMessage {
    pub what: &'static str,
    pub next: &'static str,
}

impl ReadFailure {
    /// Japanese, the terminal's first locale.
    pub fn message_ja(&self) -> CrewMessage {
        let (what, next) = match self {
            ReadFailure::NoReader => (
                "カードリーダーが見つかりません",
                "リーダーのケーブルと電源を確認してください。直らなければ口頭聴取で続行してください。",
            ),
            ReadFailure::NoCard => (
                "カードが置かれていません",
                "マイナ保険証をリーダーの中央に置いて、そのまま動かさないでください。",
            ),
            ReadFailure::CardRemoved => (
                "読み取り中にカードが離れました",
                "カードをもう一度置き、読み取り完了の表示まで動かさないでください。",
            ),
            ReadFailure::NotMynaCard => (
                "マイナンバーカードではありません",
                "マイナ保険証（マイナンバーカード）を確認してください。なければ口頭聴取で続行してください。",
            ),
            ReadFailure::SmartphoneToken { .. } => (
                "スマートフォンの電子証明書は読み取れません",
                "マイナンバーカード本体を置いてください。なければ口頭聴取で続行してください。",
            ),
            ReadFailure::Blocked => (
                "このカードの電子証明書は利用停止中です",
                "このカードでは閲覧できません。口頭聴取で続行してください（結果は「カード読取不可」として記録）。",
            ),
            ReadFailure::Timeout => (
                "カードが応答しません",
                "カードを一度離して置き直してください。続く場合はリーダーを接続し直してください。",
            ),
            ReadFailure::Unexpected { .. } => (
                "カードを読み取れませんでした",
                "カードを置き直してください。続く場合は口頭聴取で続行してください。",
            ),
        };
        CrewMessage { what, next }
    }

    /// English, the second locale.
    pub fn message_en(&self) -> CrewMessage {
        let (what, next) = match self {
            ReadFailure::NoReader => (
                "No card reader found",
                "Check the reader's cable and power. If it stays missing, continue by asking the patient.",
            ),
            ReadFailure::NoCard => (
                "No card on the reader",
                "Place the health-insurance card in the middle of the reader and hold it still.",
            ),
            ReadFailure::CardRemoved => (
                "The card left the reader during the read",
                "Place the card again and hold it still until the read completes.",
            ),
            ReadFailure::NotMynaCard => (
                "This is not a My Number card",
                "Look for the My Number health-insurance card; without it, continue by asking the patient.",
            ),
            ReadFailure::SmartphoneToken { .. } => (
                "Smartphone certificates cannot be read here",
                "Place the physical My Number card; without it, continue by asking the patient.",
            ),
            ReadFailure::Blocked => (
                "This card's certificate is suspended",
                "It cannot be used to view records. Continue by asking the patient (recorded as reader failure).",
            ),
            ReadFailure::Timeout => (
                "The card does not answer",
                "Lift the card and place it again. If it persists, reconnect the reader.",
            ),
            ReadFailure::Unexpected { .. } => (
                "The card could not be read",
                "Place the card again; if it persists, continue by asking the patient.",
            ),
        };
        CrewMessage { what, next }
    }

    /// Maps what `myna-card` reports (PC/SC errors and status words) to a crew-level failure.
    pub fn from_card_error(e: &myna_card::Error) -> Self {
        use ::pcsc::Error as P;
        match e {
            myna_card::Error::NoReader => ReadFailure::NoReader,
            myna_card::Error::ReaderNotFound(_) => ReadFailure::NoReader,
            myna_card::Error::Pcsc(p) => match p {
                P::NoReadersAvailable
                | P::UnknownReader
                | P::ReaderUnavailable
                | P::NoService
                | P::ServiceStopped => ReadFailure::NoReader,
                P::NoSmartcard => ReadFailure::NoCard,
                P::RemovedCard | P::ResetCard => ReadFailure::CardRemoved,
                P::Timeout | P::UnresponsiveCard | P::NotTransacted | P::UnpoweredCard => {
                    ReadFailure::Timeout
                }
                P::UnsupportedCard => ReadFailure::NotMynaCard,
                other => ReadFailure::Unexpected {
                    detail: format!("PC/SC: {other}"),
                },
            },
            myna_card::Error::PinBlocked => ReadFailure::Blocked,
            // No status word at all: the card left mid-exchange (what vpcd reports when the
            // card side disconnects; a physical reader usually says RemovedCard instead).
            myna_card::Error::ShortResponse(0) => ReadFailure::CardRemoved,
            other => ReadFailure::Unexpected {
                detail: other.to_string(),
            },
        }
    }
}
