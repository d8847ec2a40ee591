from pretraining import periodic_groups
from pretraining.evaluation import periodic_groups as command


def test_the_command_prints_one_row_per_table(capsys):
    assert command.main(["cgcnn92"]) == 0
    lines = capsys.readouterr().out.splitlines()
    share, count = periodic_groups.same_group_share(periodic_groups.load_table("cgcnn92"))
    assert lines[:2] == ["| vectors | main-group elements | nearest neighbour in the same group |", "|---|---|---|"]
    assert lines[2:] == [f"| cgcnn92 | {count} | {share:.0%} |"]
