"""One truth for settings: each setting's role decides which finished work a change keeps. A description-only change
(protocol) keeps every run, dataset, sweep point and ablation run; a change of what is generated (n_per_class) keeps none
of those it affects."""
from pathlib import Path

from fruit_synth.core.settings import IMAGE_KEYS, RESULT_KEYS, ROLES, SCHEMA, keys_with, load_settings, parse_value
from fruit_synth.data.sources import SOURCE_KEYS
from fruit_synth.study import ablations, report, sweep


def test_every_setting_has_a_role_and_a_default_that_reads():
    assert set(keys_with(*ROLES)) == set(SCHEMA)
    for setting in SCHEMA.values():
        parse_value(setting, setting.default, f"default of {setting.name}")
    assert "protocol" not in RESULT_KEYS and "n_per_class" in IMAGE_KEYS and "lr" not in IMAGE_KEYS


def _digests(settings, tmp_path: Path) -> dict[str, str]:
    "Every digest that decides whether finished work is reused, for `settings`."
    point = sweep.Point("copy_paste", {"n_per_class": 10}, 0)
    spec = sweep.SweepSpec({"n_per_class": [10]}, ["copy_paste"])
    return {"sources stage": settings.digest(SOURCE_KEYS),
            "report run": report.run_fingerprint(settings, "copy_paste", report.run_inputs(settings, "copy_paste", tmp_path)),
            "ablation dataset": ablations.generation_digest(settings),
            "sweep dataset": sweep.point_dataset_name(settings, "copy_paste"),
            "sweep point": sweep._point_digest(settings, point, "probe", {}),
            "sweep sample": sweep.sample_digest(settings, spec)}


def test_a_description_only_change_keeps_every_finished_piece_of_work(tmp_path):
    settings = load_settings("grocery")
    before = _digests(settings, tmp_path)
    for key in keys_with("none"):
        if key in ("work_dir", "report_dir", "demo_dir"): changed = settings.replace(**{key: tmp_path / "elsewhere"})
        elif key == "variants": changed = settings.replace(variants=["few_shot"])
        elif SCHEMA[key].kind == "int": changed = settings.replace(**{key: settings.values[key] + 1})
        else: changed = settings.replace(**{key: "described otherwise"})
        assert _digests(changed, tmp_path) == before, key
    assert ablations.same_settings(settings.to_dict(), settings.replace(protocol="described otherwise"))


def test_a_change_of_what_is_generated_keeps_none_of_the_work_it_affects(tmp_path):
    settings = load_settings("grocery")
    before, after = _digests(settings, tmp_path), _digests(settings.replace(n_per_class=7), tmp_path)
    affected = ("report run", "ablation dataset", "sweep point")  # a sweep varies n_per_class itself: its dataset is shared
    assert all(before[name] != after[name] for name in affected), {name: before[name] == after[name] for name in affected}
    assert before["sources stage"] == after["sources stage"]  # the sources do not depend on it
    assert not ablations.same_settings(settings.to_dict(), settings.replace(n_per_class=7))
    lr = _digests(settings.replace(lr=0.5), tmp_path)  # training only: the datasets stay, the runs do not
    assert lr["ablation dataset"] == before["ablation dataset"] and lr["sweep dataset"] == before["sweep dataset"]
    assert lr["report run"] != before["report run"] and lr["sweep point"] != before["sweep point"]


def test_the_settings_command_explains_every_setting_and_where_its_value_came_from(capsys):
    from conftest import cli
    status, out, err = cli(capsys, "settings", "--profile", "grocery", "--explain", "-p", "seeds=3")
    assert status == 0, err
    lines = out.splitlines()
    assert any(line.startswith("seeds ") and line.endswith("(override)") for line in lines)
    assert any(line.startswith("hflip ") and line.endswith("(default)") for line in lines)  # not in settings.ini
    assert not any(line.startswith("input_size ") and "(" in line for line in lines)  # the grocery section sets it
    assert sum("# " in line and "; role: " in line for line in lines) == len(SCHEMA)
