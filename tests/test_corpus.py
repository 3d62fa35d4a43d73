from pathlib import Path

import pytest

from cato.corpus import CorpusError, flow_key, load_corpus

TRACES = Path(__file__).parent / "btest" / "Traces"


def make_corpus(tmp_path, csv: str, captures=("a.pcap",)):
    for c in captures:
        (tmp_path / c).write_bytes((TRACES / "small.pcap").read_bytes())
    (tmp_path / "labels.csv").write_text(csv)
    return tmp_path


def test_file_level_labels_default_group(tmp_path):
    c = load_corpus(make_corpus(tmp_path, "pcap,label,kind\na.pcap,cam,video\n"))
    assert not c.flow_level
    assert c.labels.loc[0, "group"] == "a.pcap"
    c2 = load_corpus(tmp_path, label_column="kind")
    assert c2.labels.loc[0, "label"] == "video"


def test_flow_level_labels_are_direction_free(tmp_path):
    csv = ("pcap,proto,src_ip,src_port,dst_ip,dst_port,label\n"
           "a.pcap,TCP,93.184.216.34,80,10.0.0.2,40000,Web\n")
    c = load_corpus(make_corpus(tmp_path, csv))
    assert c.flow_level
    assert c.labels.loc[0, "key"] == flow_key("tcp", "10.0.0.2", 40000, "93.184.216.34", 80)


def test_missing_captures_and_bad_rows_are_reported_not_fatal(tmp_path):
    csv = ("pcap,proto,src_ip,src_port,dst_ip,dst_port,label\n"
           "a.pcap,tcp,10.0.0.2,40000,93.184.216.34,80,Web\n"
           "gone.pcap,tcp,10.0.0.2,1,10.0.0.3,2,Web\n"
           "a.pcap,udp,not-an-ip,1,10.0.0.3,2,DNS\n"
           "a.pcap,udp,10.0.0.2,5,10.0.0.3,6,\n")
    c = load_corpus(make_corpus(tmp_path, csv))
    assert len(c.labels) == 1
    text = " ".join(c.problems)
    assert "gone.pcap" in text and "bad address" in text and "without a 'label'" in text


def test_conflicting_flow_labels_are_dropped(tmp_path):
    csv = ("pcap,proto,src_ip,src_port,dst_ip,dst_port,label\n"
           "a.pcap,udp,10.0.0.2,5,10.0.0.3,6,A\n"
           "a.pcap,udp,10.0.0.3,6,10.0.0.2,5,B\n"
           "a.pcap,udp,10.0.0.2,7,10.0.0.3,6,A\n")
    c = load_corpus(make_corpus(tmp_path, csv))
    assert list(c.labels["label"]) == ["A"] and "conflicting" in " ".join(c.problems)


@pytest.mark.parametrize("csv,msg", [
    ("pcap,klass\na.pcap,x\n", "no 'label' column"),
    ("pcap,label,proto,src_ip\na.pcap,x,tcp,1.2.3.4\n", "flow-level labels need"),
    ("pcap,label\ngone.pcap,x\n", "no usable labelled rows"),
])
def test_bad_label_files(tmp_path, csv, msg):
    with pytest.raises(CorpusError, match=msg):
        load_corpus(make_corpus(tmp_path, csv))


def test_missing_folder_or_labels(tmp_path):
    with pytest.raises(CorpusError, match="not found"):
        load_corpus(tmp_path / "nope")
    with pytest.raises(CorpusError, match="labels.csv: missing"):
        load_corpus(tmp_path)


def test_capture_paths_cannot_leave_the_corpus_folder(tmp_path):
    outside = tmp_path / "outside.pcap"
    outside.write_bytes(b"not read")
    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    (corpus / "sub" / "in.pcap").write_bytes(b"x")
    (corpus / "labels.csv").write_text(f"pcap,label\n../outside.pcap,a\n{outside},a\nsub/../../outside.pcap,a\n"
                                       "sub/./in.pcap,b\n")
    loaded = load_corpus(corpus)
    assert loaded.captures == ["sub/./in.pcap"]
    assert any("lead outside" in p and "../outside.pcap" in p for p in loaded.problems)


def test_min_class_size_leaves_rare_classes_out_and_names_them(tmp_path):
    rows = [f"a.pcap,tcp,10.0.0.2,{40000 + i},10.0.0.3,80,{'Web' if i < 3 else 'Mail' if i < 5 else 'Chat'}"
            for i in range(6)]
    csv = "pcap,proto,src_ip,src_port,dst_ip,dst_port,label\n" + "\n".join(rows) + "\n"
    root = make_corpus(tmp_path, csv)
    assert set(load_corpus(root).labels["label"]) == {"Web", "Mail", "Chat"}
    c = load_corpus(root, min_class_size=2)
    assert sorted(c.labels["label"]) == ["Mail", "Mail", "Web", "Web", "Web"]
    assert any("1 class(es)" in p and "Chat" in p for p in c.problems)
    assert load_corpus(root, min_class_size=2).content_hash() != load_corpus(root).content_hash()
    with pytest.raises(CorpusError, match="no class has 4 rows"):
        load_corpus(root, min_class_size=4)
