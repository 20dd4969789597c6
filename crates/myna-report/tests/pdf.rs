#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The printed handoff through real tools: the PDF is rendered to pages with `pdftoppm`, its
//! text read back with `pdftotext` and its fonts listed with `pdffonts` (poppler-utils), and
//! every line of the FHIR document's narratives must be in it.

use myna_domain::access::Consent;
use myna_domain::alerts::AlertTable;
use myna_domain::patient::PatientSecret;
use myna_domain::summary::{View, build_summary};
use myna_fhir::sample::{handed_off_incident, sample_bundle};
use myna_report::{Fonts, handoff_pdf};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn sample() -> Value {
    let set = myna_store::testsuite::sample_person(1, "01AA00000042");
    let summary = build_summary(
        &set.person,
        &set.records,
        View::Summary,
        myna_store::testsuite::today(),
        None,
        &AlertTable::builtin().unwrap(),
    );
    let log =
        handed_off_incident(&PatientSecret::from_bytes([1; 32]).patient("01AA00000042")).unwrap();
    sample_bundle(&log, &summary, Consent::Obtained).unwrap()
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd} (poppler-utils) must be installed: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn squeeze(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Dark pixels of a binary PGM (P5) page.
fn dark_pixels(pgm: &Path) -> usize {
    let bytes = std::fs::read(pgm).unwrap();
    // Header: P5\n<w> <h>\n<max>\n
    let mut fields = 0;
    let mut i = 0;
    while fields < 4 {
        while bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        while !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        fields += 1;
    }
    bytes[i + 1..].iter().filter(|b| **b < 128).count()
}

#[test]
fn the_pdf_is_a4_japanese_with_its_font_embedded_and_says_what_the_fhir_document_says() {
    let bundle = sample();
    let fonts = Fonts::system().expect("a Japanese font from fonts-ipaexfont-gothic");
    let (pdf, pages) = handoff_pdf(&bundle, fonts, (2026, 11, 24)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("handoff.pdf");
    std::fs::write(&file, &pdf).unwrap();
    let path = file.to_str().unwrap();

    let info = run("pdfinfo", &[path]);
    assert!(info.contains("595.276 x 841.89"), "A4: {info}");
    let listed = info
        .lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .map(str::trim);
    assert_eq!(listed, Some(pages.to_string().as_str()), "{info}");

    let fonts_listed = run("pdffonts", &[path]);
    let font_row = fonts_listed
        .lines()
        .find(|l| l.contains("IPAex") || l.contains("NotoSansCJK"))
        .unwrap_or_else(|| panic!("no CJK font: {fonts_listed}"));
    // Columns: name type encoding emb sub uni object ID
    let cols: Vec<&str> = font_row.split_whitespace().collect();
    assert_eq!(cols[cols.len() - 5], "yes", "embedded: {font_row}");

    let text = squeeze(&run("pdftotext", &["-layout", path, "-"]));
    for needle in [
        "川崎　花子",
        "エリキュース",
        "拮抗薬",
        "182/104",
        "救急科山田",
        "川崎市立川崎病院",
    ] {
        assert!(
            text.contains(&squeeze(needle)),
            "{needle} is not in the PDF"
        );
    }
    // Every line of every section of the FHIR document is in the PDF.
    let composition = &bundle["entry"][0]["resource"];
    for s in composition["section"].as_array().unwrap() {
        assert!(text.contains(&squeeze(s["title"].as_str().unwrap())));
        let div = s["text"]["div"].as_str().unwrap();
        for p in div.split("<p>").skip(1) {
            let line = p
                .split("</p>")
                .next()
                .unwrap()
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&")
                .replace("&quot;", "\"");
            assert!(
                text.contains(&squeeze(&line)),
                "{line:?} is missing from the PDF"
            );
        }
    }

    // Rendered: one image per page, each with ink on it.
    let prefix = dir.path().join("page");
    run(
        "pdftoppm",
        &["-r", "40", "-gray", path, prefix.to_str().unwrap()],
    );
    let mut rendered: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "pgm"))
        .collect();
    rendered.sort();
    assert_eq!(rendered.len(), pages);
    for page in &rendered {
        assert!(dark_pixels(page) > 500, "{} looks blank", page.display());
    }
}

#[test]
fn a_bundle_that_is_not_a_document_is_refused_plainly() {
    let fonts = Fonts::system().unwrap();
    let mut not_doc = sample();
    not_doc["type"] = "collection".into();
    assert!(handoff_pdf(&not_doc, fonts, (2026, 11, 24)).is_err());
    // Typst syntax in the data is printed, not run.
    let mut hostile = sample();
    hostile["entry"][0]["resource"]["title"] = "#panic(\"x\") ]) #set page(width: 1pt)".into();
    // A name outside IPAex's glyphs is set from the fallback font, not lost.
    hostile["entry"][1]["resource"]["name"][0]["text"] = "𠮷田 太郎".into();
    let (pdf, _) = handoff_pdf(&hostile, fonts, (2026, 11, 24)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hostile.pdf");
    std::fs::write(&file, &pdf).unwrap();
    let text = squeeze(&run("pdftotext", &[file.to_str().unwrap(), "-"]));
    assert!(
        text.contains(&squeeze("#panic(\"x\") ]) #set page(width: 1pt)")),
        "printed as text"
    );
    assert!(text.contains("𠮷田"), "{text}");
    assert!(run("pdfinfo", &[file.to_str().unwrap()]).contains("595.276 x 841.89"));
}

/// With `MYNA_REPORT_OUT=file.pdf`, keeps the sample PDF to look at.
#[test]
fn the_sample_pdf_can_be_kept_for_a_look() {
    if let Ok(out) = std::env::var("MYNA_REPORT_OUT") {
        let (pdf, _) = handoff_pdf(&sample(), Fonts::system().unwrap(), (2026, 11, 24)).unwrap();
        std::fs::write(out, pdf).unwrap();
    }
}
