"""The torch reference of a checkpoint (`edgekit val CHECKPOINT`, the INT8 budget's FP32 figure) runs the deploy
form the converters export: the trained fixture of every family validates to the same figures in that form as
in the training form, and a deploy form that is not the training form's function is refused when the detector
is made."""

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from edgekit.converters.source_detector import open_source_detector  # noqa: E402
from edgekit.errors import EdgekitError  # noqa: E402
from edgekit.eval.datasets import load_dataset  # noqa: E402
from edgekit.eval.val import validate  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "families"
IMAGES = 6
SIZE = 160  # small, for speed: the fixtures were trained at 320 and still find most shapes here
BY_FAMILY = {"yolo26n.pt": {}, "yolo26n.pt one-to-many": {"nms": True}, "yolov9-t.pt": {}, "damoyolo-t.pth": {}}


@pytest.fixture(scope="module")
def few_scenes():
    data = load_dataset(FIXTURES / "scenes" / "data.yaml", "val")
    data.items = data.items[:IMAGES]
    return data


def figures(report) -> dict:
    doc = report.as_dict()
    return {k: doc[k] for k in ("map50_95", "map50", "precision", "recall", "classes")}


@pytest.mark.parametrize("case", sorted(BY_FAMILY))
def test_val_of_a_checkpoint_is_the_same_in_deploy_and_training_form(case, few_scenes):
    torch.set_num_threads(1)
    path = FIXTURES / case.split()[0]
    deploy = open_source_detector(path, SIZE, **BY_FAMILY[case])
    training = open_source_detector(path, SIZE, form="training", **BY_FAMILY[case])
    assert deploy.form == "deploy" and training.form == "training"
    assert deploy.check is not None and deploy.check.passed
    assert deploy.notes[-1].startswith("form     deploy (fused, one head") and deploy.notes[-1].endswith("ok")
    fast, slow = (figures(validate(d, few_scenes, progress=False)) for d in (deploy, training))
    assert fast["map50_95"] > 0.2, fast  # the fixtures detect at this size: the comparison is not of empty sets
    assert fast == slow


def test_a_deploy_form_that_is_not_the_training_forms_function_is_refused(monkeypatch):
    from edgekit.converters import families

    opened = families.open_source

    def broken_deploy(*args, **kwargs):
        source = opened(*args, **kwargs)
        make = source.make_deploy

        def make_broken():
            deploy = make()
            conv = next(m for m in deploy.modules() if isinstance(m, torch.nn.Conv2d))
            conv.weight.data.mul_(1.02)  # a fold that is off by 2%
            return deploy

        source.make_deploy = make_broken
        return source

    monkeypatch.setattr(families, "open_source", broken_deploy)
    with pytest.raises(EdgekitError, match=r"the deploy form differs from the training form \(boxes"):
        open_source_detector(FIXTURES / "yolov9-t.pt", SIZE)
    assert open_source_detector(FIXTURES / "yolov9-t.pt", SIZE, form="training").check is None


def test_threads_reach_torch_for_a_checkpoint():
    before = torch.get_num_threads()
    try:
        open_source_detector(FIXTURES / "yolov9-t.pt", SIZE, form="training", threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
