//! The printed handoff (引継ぎ書): a Japanese A4 PDF, typeset in-process with typst.
//!
//! The PDF is a rendering of the FHIR handoff document (`myna-fhir`): the patient from the
//! `Patient`, then every section of the `Composition` with its title and narrative, so the
//! paper and the FHIR copy cannot say different things. The font (IPAex Gothic, else Noto
//! Sans CJK, from Debian's packages) is embedded; nothing is fetched at run time.

use serde_json::Value;
use std::path::PathBuf;
use std::sync::OnceLock;
use typst::diag::{FileError, FileResult};
use typst::foundations::{Bytes, Datetime, Duration};
use typst::syntax::{FileId, RootedPath, Source, VirtualPath, VirtualRoot};
use typst::text::{Font, FontBook};
use typst::utils::LazyHash;
use typst::{Library, LibraryExt, World};
use typst_layout::PagedDocument;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    #[error("not a handoff document: {0}")]
    NotADocument(String),
    #[error("no Japanese font: {0}")]
    Font(String),
    #[error("typesetting failed: {0}")]
    Typeset(String),
}

/// Where Debian puts the fonts we can embed, in order of preference (`fonts-ipaexfont-gothic`,
/// then `fonts-noto-cjk`).
pub const FONT_FILES: [&str; 2] = [
    "/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
];

/// The fonts a report is set in: the first file's family, then the others for the glyphs it
/// lacks (IPAex has no 𠮷, Noto CJK has).
pub struct Fonts {
    fonts: Vec<Font>,
    book: LazyHash<FontBook>,
    families: Vec<String>,
}

impl Fonts {
    /// Loads every one of `files` that exists and holds a font; at least one must.
    pub fn load(files: &[PathBuf]) -> Result<Self, ReportError> {
        let mut fonts: Vec<Font> = Vec::new();
        let mut families: Vec<String> = Vec::new();
        for f in files {
            let Ok(data) = std::fs::read(f) else {
                continue;
            };
            for font in Font::iter(Bytes::new(data)) {
                let family = font.info().family.clone();
                if !families.contains(&family) {
                    families.push(family);
                }
                fonts.push(font);
            }
        }
        if !fonts.is_empty() {
            return Ok(Fonts {
                book: LazyHash::new(FontBook::from_fonts(&fonts)),
                fonts,
                families,
            });
        }
        Err(ReportError::Font(format!(
            "none of {} could be read (install fonts-ipaexfont-gothic)",
            files
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }

    /// The system's fonts (`FONT_FILES`), loaded once per process; a failure is not kept, so
    /// installing the font package mends a running server.
    pub fn system() -> Result<&'static Fonts, ReportError> {
        static FONTS: OnceLock<Fonts> = OnceLock::new();
        if let Some(f) = FONTS.get() {
            return Ok(f);
        }
        let loaded = Fonts::load(&FONT_FILES.iter().map(PathBuf::from).collect::<Vec<_>>())?;
        Ok(FONTS.get_or_init(|| loaded))
    }

    /// The families, in the order typst tries them.
    pub fn families(&self) -> &[String] {
        &self.families
    }

    pub fn family(&self) -> &str {
        self.families.first().map_or("", String::as_str)
    }
}

/// The one-document world typst compiles in: our markup, our fonts, no files.
struct ReportWorld<'a> {
    library: LazyHash<Library>,
    fonts: &'a Fonts,
    main: Source,
    today: (i32, u8, u8),
}

impl World for ReportWorld<'_> {
    fn library(&self) -> &LazyHash<Library> {
        &self.library
    }
    fn book(&self) -> &LazyHash<FontBook> {
        &self.fonts.book
    }
    fn main(&self) -> FileId {
        self.main.id()
    }
    fn source(&self, id: FileId) -> FileResult<Source> {
        if id == self.main.id() {
            Ok(self.main.clone())
        } else {
            Err(FileError::NotFound(id.vpath().get_without_slash().into()))
        }
    }
    fn file(&self, id: FileId) -> FileResult<Bytes> {
        Err(FileError::NotFound(id.vpath().get_without_slash().into()))
    }
    fn font(&self, index: usize) -> Option<Font> {
        self.fonts.fonts.get(index).cloned()
    }
    fn today(&self, _offset: Option<Duration>) -> Option<Datetime> {
        let (y, m, d) = self.today;
        Datetime::from_ymd(y, m, d)
    }
}

/// A typst string literal of `s`.
fn lit(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The paragraphs of a narrative we generated (`<div …><p>…</p>…</div>`), unescaped.
fn paragraphs(div: &str) -> Vec<String> {
    div.split("<p>")
        .skip(1)
        .filter_map(|p| p.split("</p>").next())
        .map(|p| {
            p.replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&amp;", "&")
        })
        .collect()
}

fn resource<'a>(bundle: &'a Value, kind: &str) -> Option<&'a Value> {
    bundle["entry"]
        .as_array()?
        .iter()
        .map(|e| &e["resource"])
        .find(|r| r["resourceType"] == kind)
}

fn text<'a>(v: &'a Value, what: &str) -> Result<&'a str, ReportError> {
    v.as_str()
        .ok_or_else(|| ReportError::NotADocument(format!("no {what}")))
}

/// The typst markup of the report for a handoff document, set in `families` (first choice
/// first).
pub fn markup(bundle: &Value, families: &[String]) -> Result<String, ReportError> {
    let composition = &bundle["entry"][0]["resource"];
    if bundle["type"] != "document" || composition["resourceType"] != "Composition" {
        return Err(ReportError::NotADocument(
            "a document Bundle starts with its Composition".into(),
        ));
    }
    let patient = resource(bundle, "Patient")
        .ok_or_else(|| ReportError::NotADocument("no Patient".into()))?;
    let title = text(&composition["title"], "title")?;
    let name = text(&patient["name"][0]["text"], "patient name")?;
    let kana = patient["name"][1]["text"].as_str().unwrap_or("");
    let sex = match patient["gender"].as_str() {
        Some("male") => "男",
        Some("female") => "女",
        _ => "不明",
    };
    let mut m = String::new();
    m.push_str(&format!(
        "#set page(paper: \"a4\", margin: (x: 16mm, top: 14mm, bottom: 16mm), \
         footer: context [#set text(size: 7.5pt); #{} #h(1fr) #counter(page).display(\"1 / 1\", both: true)])\n",
        lit(&format!(
            "マイナ救急 引継ぎ書 ／ {} ／ 作成 {} (UTC)",
            text(&bundle["identifier"]["value"], "identifier")?,
            text(&bundle["timestamp"], "timestamp")?
        ))
    ));
    let fonts: Vec<String> = families.iter().map(|f| lit(f)).collect();
    m.push_str(&format!(
        "#set text(font: ({},), size: 9.5pt, lang: \"ja\")\n#set par(leading: 0.55em)\n",
        fonts.join(", ")
    ));
    m.push_str(&format!("#text(size: 15pt)[#{}]\n\n", lit(title)));
    m.push_str(&format!(
        "#table(columns: (auto, 1fr, auto, 1fr), stroke: 0.4pt, inset: 4pt,\n  [氏名], [#{}], [カナ], [#{}],\n  [生年月日], [#{}], [性別], [#{}],\n  [被保険者], [#{}], [住所], [#{}],\n)\n",
        lit(name),
        lit(kana),
        lit(patient["birthDate"].as_str().unwrap_or("")),
        lit(sex),
        lit(patient["identifier"][0]["value"].as_str().unwrap_or("")),
        lit(patient["address"][0]["text"].as_str().unwrap_or("")),
    ));
    // Where the summary came from and on what basis (the Provenance).
    if let Some(source) =
        resource(bundle, "Provenance").and_then(|p| p["entity"][0]["what"]["display"].as_str())
    {
        m.push_str(&format!("\n#text(size: 8.5pt)[出典: #{}]\n", lit(source)));
    }
    let sections = composition["section"]
        .as_array()
        .ok_or_else(|| ReportError::NotADocument("no sections".into()))?;
    for s in sections {
        let heading = text(&s["title"], "section title")?;
        m.push_str(&format!(
            "\n#block(above: 0.9em, below: 0.4em)[#text(size: 11pt)[■ #{}]]\n",
            lit(heading)
        ));
        for p in paragraphs(s["text"]["div"].as_str().unwrap_or("")) {
            m.push_str(&format!("- #{}\n", lit(&p)));
        }
    }
    m.push_str(
        "\n#v(1.2em)\n#table(columns: (auto, 1fr, auto, 1fr), stroke: 0.4pt, inset: 6pt,\n  \
         [受領者（医師）], [], [受領時刻], [],\n)\n",
    );
    Ok(m)
}

fn typeset_error(errs: &[typst::diag::SourceDiagnostic]) -> ReportError {
    ReportError::Typeset(
        errs.iter()
            .map(|e| e.message.to_string())
            .collect::<Vec<_>>()
            .join("; "),
    )
}

/// A PDF (and its page count) of the handoff document, set in `fonts`, dated `today`.
pub fn handoff_pdf(
    bundle: &Value,
    fonts: &Fonts,
    today: (i32, u8, u8),
) -> Result<(Vec<u8>, usize), ReportError> {
    let text = markup(bundle, fonts.families())?;
    let path =
        VirtualPath::new("handoff.typ").map_err(|e| ReportError::Typeset(format!("{e:?}")))?;
    let id = RootedPath::new(VirtualRoot::Project, path).intern();
    let world = ReportWorld {
        library: LazyHash::new(Library::default()),
        fonts,
        main: Source::new(id, text),
        today,
    };
    let document = typst::compile::<PagedDocument>(&world)
        .output
        .map_err(|e| typeset_error(&e))?;
    let pages = document.pages().len();
    let pdf = typst_pdf::pdf(&document, &typst_pdf::PdfOptions::default())
        .map_err(|e| typeset_error(&e))?;
    Ok((pdf, pages))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_escape_what_typst_would_read() {
        assert_eq!(lit(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(lit("#set [x] $y$ *z*"), "\"#set [x] $y$ *z*\"");
        assert_eq!(lit("改行\n"), "\"改行\\n\"");
    }

    #[test]
    fn narratives_come_back_as_written() {
        let div =
            "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>a &lt;b&gt; &amp; c</p><p>二</p></div>";
        assert_eq!(
            paragraphs(div),
            vec!["a <b> & c".to_owned(), "二".to_owned()]
        );
    }
}
