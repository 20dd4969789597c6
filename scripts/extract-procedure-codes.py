#!/usr/bin/env python3
"""Extract the device and home-respiratory rows of the 診療行為 master (s_ files).

Usage: extract-procedure-codes.py DATA_DIR > crates/myna-domain/data/procedure-master-extract.csv

DATA_DIR is the `DATA/` folder of the public repository miyako/4d-component-ssk-master
(commit 6183e95b4ba339b4465a98236c3b841804b3ab19): `s_ALL20220218.zip` and the deltas
`s_YYYYMMDD.csv`. The folder also holds `s_20240531.zip`, a full master of that date; the
deltas already carry its changes (rebuilding from it gives the same rows), so it is skipped. The deltas are applied in date order (変更区分 column 1: 3 new; 5 changed and 9
abolished carry only the fields that change). Only rows whose name mentions an implanted cardiac device
or home oxygen / home ventilation are kept: the alert table's procedure rules are tested
against every such row, so a new code in a later master shows up as an unclassified row.
"""
import csv, io, re, sys, zipfile, pathlib

KEYWORDS = re.compile(
    "ペースメーカー|除細動器|在宅酸素|在宅人工呼吸|人工呼吸器加算|酸素ボンベ加算|酸素濃縮装置加算"
    "|液化酸素装置加算|呼吸同調式デマンドバルブ|在宅ハイフロー|在宅持続陽圧呼吸|補助人工心臓|気管切開|喉頭摘出|排痰補助|横隔神経電気刺激"
)
# Column indices (0-based) of the 支払基金 診療行為マスター layout.
CHANGE, CODE, NAME, SECTION, CHANGED, ABOLISHED, KUBUN, BRANCH, ITEM, BASIC_NAME = (
    0, 2, 4, 84, 86, 87, 91, 92, 93, 112)

def rows(text):
    yield from csv.reader(io.StringIO(text))

def main():
    data = pathlib.Path(sys.argv[1])
    full = zipfile.ZipFile(data / "s_ALL20220218.zip")
    master, origin = {}, {}
    for name in full.namelist():
        for r in rows(full.read(name).decode("cp932")):
            master[r[CODE]] = r
            origin[r[CODE]] = "s_ALL20220218"
    for delta in sorted(data.glob("s_2*.csv")):
        for r in rows(delta.read_bytes().decode("cp932")):
            known = master.get(r[CODE])
            if known is not None and r[CHANGE] in ("5", "9"):
                # A change row fills only the fields that changed; 9 also sets 廃止年月日.
                for i, v in enumerate(r[: len(known)]):
                    if v != "" and i != CHANGE:
                        known[i] = v
            else:
                master[r[CODE]] = r
            origin[r[CODE]] = delta.stem
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(["code", "kubun", "name", "abolished_on", "last_file"])
    for code in sorted(master):
        r = master[code]
        if not KEYWORDS.search(r[NAME] + r[BASIC_NAME]):
            continue
        kubun = f"{r[SECTION]}{int(r[KUBUN]):03d}" if r[KUBUN].isdigit() else r[SECTION]
        if r[BRANCH] not in ("", "00"):
            kubun += f"-{int(r[BRANCH])}"
        abolished = "" if r[ABOLISHED] in ("", "99999999") else r[ABOLISHED]
        out.writerow([code, kubun, r[NAME], abolished, origin[code]])

main()
