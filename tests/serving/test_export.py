"""ONNX export: the graph reproduces PyTorch's scores for any batch size and length, for every model, and is
served with onnxruntime + numpy alone; taken folders, unexportable models and a missing exporter are clear errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import seqrec
from helpers import assert_cli_error, tiny_model_config, tiny_train_config
from seqrec.data.splits import SplitData
from seqrec.models.base import MODEL_REGISTRY, SequentialEncoder, build_model
from seqrec.models.gru4rec import GRU4Rec
from seqrec.recommender import Recommender
from seqrec.serving.export import MANIFEST, ExportError, export_recommender, unpacked_gru_encode
from seqrec.steering.popsteer import PopularityReweighting
from seqrec.steering.sae import TopKSAE
from seqrec.steering.steered import SteeredEncoder
from seqrec.steering.tuning import LatentController

EXTRA = "the export extra (onnx, onnxruntime, onnxscript) is not installed"
onnx = pytest.importorskip("onnx", reason=EXTRA)
onnxruntime = pytest.importorskip("onnxruntime", reason=EXTRA)
pytest.importorskip("onnxscript", reason=EXTRA)

MAX_LEN = 10  # tiny_model_config's window


# ---------------------------------------------------------------- a server that knows nothing of seqrec


class ExportedScorer:
    """Ranks from an export folder with onnxruntime and numpy only, as the manifest says."""

    def __init__(self, folder: Path) -> None:
        self.manifest = json.loads((folder / MANIFEST).read_text())
        files = self.manifest["files"]
        self.session = onnxruntime.InferenceSession(str(folder / files["user_encoder"]))
        self.item_vectors = np.load(folder / files["item_vectors"])  # [N+1, D]
        self.item_ids = json.loads((folder / files["item_ids"]).read_text())  # [N+1], None at row 0

    def scores(self, items: np.ndarray) -> np.ndarray:  # [B, L] int64 -> [B, N+1]
        vectors = self.session.run(["user_vector"], {"items": items})[0]
        scores = vectors @ self.item_vectors.T
        scores[:, 0] = -np.inf
        return scores

    def top(self, items: np.ndarray, k: int) -> list[list[str]]:
        order = np.argsort(-self.scores(items), axis=1, kind="stable")[:, :k]
        return [[self.item_ids[row] for row in rows] for rows in order]


def torch_scores(recommender: Recommender, histories: np.ndarray) -> np.ndarray:  # [B, max_len] -> [B, N+1]
    with torch.no_grad():
        return recommender.model.eval().score(torch.from_numpy(histories)).numpy()


def inputs(recommender: Recommender, users: np.ndarray, width: int) -> np.ndarray:
    """The users' histories left-padded (or cut) to `width` columns.  -> [B, width]"""
    return recommender.histories.take(users).padded(width)


def window(items: np.ndarray) -> np.ndarray:
    """What `Recommender` feeds the model: the last MAX_LEN columns, left-padded to MAX_LEN.  [B, L] -> [B, MAX_LEN]"""
    last = items[:, -MAX_LEN:]
    return np.pad(last, ((0, 0), (MAX_LEN - last.shape[1], 0)))


# ---------------------------------------------------------------- one export per model


@pytest.fixture(scope="module", params=sorted(MODEL_REGISTRY))
def exported(request: pytest.FixtureRequest, tiny_data: SplitData,
             tmp_path_factory: pytest.TempPathFactory) -> tuple[Recommender, Path]:
    """Every registered model trained for an epoch and exported once."""
    run = seqrec.train(tiny_model_config(request.param), tiny_data, tiny_train_config(), progress=False)
    folder = export_recommender(run.recommender, tmp_path_factory.mktemp("export") / request.param)
    return run.recommender, folder


@pytest.mark.parametrize(("batch", "width"), [(1, 1), (3, 4), (7, MAX_LEN), (5, MAX_LEN + 5)])
def test_onnx_scores_match_pytorch_for_other_batch_sizes_and_lengths(exported: tuple[Recommender, Path], batch: int,
                                                                       width: int) -> None:
    recommender, folder = exported
    users = np.arange(batch) * 7 % len(recommender.histories)
    items = inputs(recommender, users, width)  # the export traced a [2, 2] batch: other sizes, shorter and longer
    expected = torch_scores(recommender, window(items))
    got = ExportedScorer(folder).scores(items)
    assert got.shape == expected.shape == (batch, recommender.model.num_items + 1)
    assert np.abs(got[:, 1:] - expected[:, 1:]).max() <= 1e-4
    assert np.array_equal(np.argsort(-got, axis=1)[:, :10], np.argsort(-expected, axis=1)[:, :10])


def test_ranking_from_the_export_is_the_recommenders_in_external_ids(exported: tuple[Recommender, Path]) -> None:
    recommender, folder = exported
    users = [recommender.user_map.external[i] for i in (0, 5, 11)]
    rows = recommender.recommend(users, k=10, mask_seen=False)
    expected = [[r["item"] for r in rows if r["user"] == user] for user in users]
    internal = recommender.user_map.to_internal(users)
    assert ExportedScorer(folder).top(inputs(recommender, internal, MAX_LEN + 3), k=10) == expected


def test_an_empty_history_scores_like_pytorch(exported: tuple[Recommender, Path]) -> None:
    recommender, folder = exported
    items = inputs(recommender, np.array([3, 4]), MAX_LEN)
    items[1] = 0
    got, expected = ExportedScorer(folder).scores(items), torch_scores(recommender, items)
    assert np.abs(got[:, 1:] - expected[:, 1:]).max() <= 1e-4


def test_the_manifest_describes_the_files(exported: tuple[Recommender, Path]) -> None:
    recommender, folder = exported
    scorer = ExportedScorer(folder)
    model, manifest = recommender.model, scorer.manifest
    assert (manifest["model"], manifest["max_len"]) == (model.config.name, MAX_LEN)
    assert manifest["hidden"] == model.config.hidden == scorer.item_vectors.shape[1]
    assert manifest["num_items"] == model.num_items == scorer.item_vectors.shape[0] - 1
    assert scorer.item_ids == [None, *recommender.item_map.external]
    assert np.array_equal(scorer.item_vectors, model.item_embeddings().detach().numpy())
    graph = onnx.load(str(folder / manifest["files"]["user_encoder"]))
    assert manifest["opset"] == next(op.version for op in graph.opset_import if op.domain in ("", "ai.onnx"))
    (given,), (returned,) = scorer.session.get_inputs(), scorer.session.get_outputs()
    assert (given.name, given.type, given.shape) == ("items", "tensor(int64)", ["batch", "length"])
    assert (returned.name, returned.shape[1]) == ("user_vector", model.config.hidden)
    assert manifest["scoring"]["rule"] == "score = user_vector @ item_vectors.T"
    assert manifest["scoring"]["padding_row"] == 0 and manifest["check"]["max_abs_score_difference"] <= 1e-4


# ---------------------------------------------------------------- wrappers and graph forms


def plain_recommender(data: SplitData, model: object) -> Recommender:
    return Recommender(model, data.user_map, data.item_map, data.full_histories, data.catalog)  # type: ignore[arg-type]


def test_the_gru_graph_form_equals_the_packed_gru_at_every_position() -> None:
    torch.manual_seed(0)
    model = build_model(tiny_model_config("gru4rec", layers=2), 30).eval()
    assert isinstance(model, GRU4Rec)
    items = torch.randint(1, 31, (4, 9))
    items[0, :4], items[1, :8], items[2] = 0, 0, 0  # lengths 5, 1, 0, 9
    with torch.no_grad():
        assert torch.allclose(unpacked_gru_encode(model, items), model.encode(items), atol=1e-6)


@pytest.mark.parametrize(("name", "combine"), [("sasrec", "sum"), ("gru4rec", "concat")])
def test_a_model_with_item_features_exports_with_them(tiny_data: SplitData, tmp_path: Path, name: str,
                                                      combine: str) -> None:
    torch.manual_seed(0)
    model = build_model(tiny_model_config(name, item_features=["genre"], feature_combine=combine),
                        tiny_data.num_items, tiny_data.catalog).eval()
    with torch.no_grad():  # features that matter: the export must carry them
        model.item_embeddings()  # builds fine before export
        for module in model.modules():
            if hasattr(module, "bags"):
                module.values.weight.mul_(50.0)
    recommender = plain_recommender(tiny_data, model)
    out = export_recommender(recommender, tmp_path / "featured")
    vectors = np.load(out / "item_vectors.npy")
    np.testing.assert_allclose(vectors, model.item_embeddings().detach().numpy(), rtol=1e-6, atol=1e-6)
    session = onnxruntime.InferenceSession(str(out / "user_encoder.onnx"))
    items = torch.from_numpy(tiny_data.full_histories.padded(model.max_len)[1:5])
    users = session.run(None, {"items": items.numpy()})[0]
    np.testing.assert_allclose(users, model.user_vector(items).detach().numpy(), rtol=1e-4, atol=1e-4)


def test_a_steered_encoder_exports_with_its_sae_and_controller(tiny_data: SplitData, tmp_path: Path) -> None:
    """Around a GRU4Rec, so the graph form of a wrapped model is used too."""
    torch.manual_seed(0)
    base = build_model(tiny_model_config("gru4rec"), tiny_data.num_items)
    controller = LatentController([1, 5, 9], num_latents=64)
    with torch.no_grad():
        controller.multiplier.uniform_(0.0, 3.0)
        controller.bias.uniform_(-1.0, 1.0)
    steered = SteeredEncoder(base, TopKSAE(16, 64, 4), "recon", controller).eval()
    recommender = plain_recommender(tiny_data, steered)
    folder = export_recommender(recommender, tmp_path / "steered")
    items = inputs(recommender, np.arange(6), MAX_LEN + 2)
    got, expected = ExportedScorer(folder).scores(items), torch_scores(recommender, window(items))
    plain = torch_scores(plain_recommender(tiny_data, base.eval()), window(items))
    assert np.abs(got[:, 1:] - expected[:, 1:]).max() <= 1e-4
    assert np.abs(plain[:, 1:] - expected[:, 1:]).max() > 1e-2  # the steering is in the graph, not left out


class HostSideEncoder(SequentialEncoder):
    """A user vector that reads values back into Python (as a FAISS search does): it has no graph."""

    def __init__(self, base: SequentialEncoder) -> None:
        super().__init__(base.config, base.num_items)
        self.base = base

    def item_embeddings(self) -> torch.Tensor:
        return self.base.item_embeddings()

    def user_vector(self, items: torch.Tensor) -> torch.Tensor:
        vectors = self.base.user_vector(items)
        norms = [max(1.0, norm) for norm in vectors.norm(dim=1).tolist()]
        return vectors / torch.tensor(norms)[:, None]


def test_a_model_that_does_not_trace_is_refused_and_leaves_no_folder(tiny_data: SplitData, tmp_path: Path) -> None:
    base = build_model(tiny_model_config("sasrec"), tiny_data.num_items)
    expected = "HostSideEncoder does not export to a graph with a dynamic batch and length .*; runs that export"
    with pytest.raises(ExportError, match=expected):
        export_recommender(plain_recommender(tiny_data, HostSideEncoder(base).eval()), tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_scores_other_than_the_dot_product_are_refused(tiny_data: SplitData, tmp_path: Path) -> None:
    base = build_model(tiny_model_config("sasrec"), tiny_data.num_items).eval()
    reweighted = PopularityReweighting(base, np.arange(tiny_data.num_items + 1, dtype=np.float64), beta=1.0)
    with pytest.raises(ExportError, match="PopularityReweighting does not score items as user_vector @ item_vectors"):
        export_recommender(plain_recommender(tiny_data, reweighted), tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- the folder and the command line


@pytest.fixture(scope="module")
def saved_run(tiny_data: SplitData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = seqrec.train(tiny_model_config("sasrec"), tiny_data, tiny_train_config(), progress=False)
    return run.save(tmp_path_factory.mktemp("cli") / "tiny")


def test_cli_exports_into_the_run_and_never_overwrites(saved_run: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture) -> None:
    from typer.testing import CliRunner

    from seqrec import cli

    result = CliRunner().invoke(cli.app, ["export", str(saved_run)])
    folder = saved_run / "export-onnx"
    assert result.exit_code == 0 and "export written to" in result.output
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["run"] == str(saved_run) and manifest["model"] == "sasrec"
    before = (folder / "user_encoder.onnx").read_bytes()
    assert_cli_error(["export", str(saved_run)], "already exists; choose another --out, or pass --force",
                     monkeypatch, capsys)
    assert (folder / "user_encoder.onnx").read_bytes() == before


def test_force_replaces_an_export_but_nothing_else(saved_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture) -> None:
    recommender = seqrec.load(saved_run).recommender
    folder = export_recommender(recommender, tmp_path / "export", run="first")
    export_recommender(recommender, folder, force=True, run="second")
    assert json.loads((folder / MANIFEST).read_text())["run"] == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]  # no temporary folder left behind
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    assert_cli_error(["export", str(saved_run), "--out", str(mine), "--force"], "is not a seqrec export",
                     monkeypatch, capsys)
    assert (mine / "notes.txt").read_text() == "keep"


def test_cli_errors_without_traceback(saved_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture) -> None:
    assert_cli_error(["export", str(saved_run), "--format", "tflite", "--out", str(tmp_path / "x")],
                     "unknown export format 'tflite'; choose one of: onnx", monkeypatch, capsys)
    assert_cli_error(["export", str(tmp_path / "no-run")], "run directory not found", monkeypatch, capsys)
    assert not (tmp_path / "no-run").exists()
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    assert_cli_error(["export", str(saved_run), "--out", str(tmp_path / "x")],
                     "needs the package onnxruntime, which is not installed; install the exporter with: "
                     "pip install 'seqrec[export]'", monkeypatch, capsys)
    assert not (tmp_path / "x").exists()
