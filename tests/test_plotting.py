import matplotlib.pyplot as plt
import pytest
import torch

from course_utils import plotting


def test_image_grid_shapes_and_range():
    imgs = torch.rand(10, 1, 28, 28)
    grid = plotting.image_grid(imgs, nrow=5, padding=2)
    # 5 columns and 2 rows of 28-pixel images with 2-pixel padding around each
    assert grid.shape == (3, 2 * 30 + 2, 5 * 30 + 2)
    assert 0.0 <= float(grid.min()) and float(grid.max()) <= 1.0
    flat = plotting.image_grid(imgs.reshape(10, 784), nrow=5)
    assert torch.equal(flat, grid)
    tanh = plotting.image_grid(imgs * 2 - 1, nrow=5, value_range=(-1, 1))
    assert torch.allclose(tanh, grid, atol=1e-6)


@pytest.mark.parametrize(
    "imgs, words",
    [
        (torch.rand(4, 100), "cannot be reshaped to image_shape (1, 28, 28)"),
        (torch.rand(28, 28, 1), "(N, C, H, W) or (N, C*H*W), got (28, 28, 1)"),
        (torch.rand(0, 1, 28, 28), "images is empty"),
    ],
)
def test_image_grid_bad_input(imgs, words):
    with pytest.raises(ValueError) as e:
        plotting.image_grid(imgs)
    assert words in str(e.value)
    with pytest.raises(TypeError, match="floating-point"):
        plotting.image_grid(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))


def test_show_images_draws_one_image():
    ax = plotting.show_images(torch.rand(16, 1, 28, 28), nrow=8, title="samples")
    assert len(ax.images) == 1 and ax.get_title() == "samples"


def test_scatter_2d_with_and_without_labels():
    pts = torch.randn(50, 2)
    ax = plotting.scatter_2d(pts)
    assert len(ax.collections) == 1
    ax = plotting.scatter_2d(pts, labels=torch.arange(50) % 3)
    assert len(ax.collections) == 3
    with pytest.raises(ValueError, match=r"points must have shape \(N, 2\), got \(50, 3\)"):
        plotting.scatter_2d(torch.randn(50, 3))
    with pytest.raises(ValueError, match=r"labels must have shape \(50,\)"):
        plotting.scatter_2d(pts, labels=torch.zeros(49))
    ax.set_xlim(-10, 10)  # fixed limits are kept (no "Ignoring fixed x limits" warning)
    assert ax.get_xlim() == (-10, 10)


def test_plot_function_2d_and_decision_boundary():
    ax = plotting.plot_function_2d(lambda p: torch.sigmoid(p[:, 0]), n=50, contour_at=[0.5])
    assert len(ax.collections) >= 2  # filled contours and the boundary line
    with pytest.raises(ValueError, match=r"fn must map \(M, 2\) points to \(M,\) values"):
        plotting.plot_function_2d(lambda p: p, n=10)


def test_grid_2d_covers_the_box():
    xx, yy, pts = plotting.grid_2d((-1, 1), (0, 2), n=5)
    assert pts.shape == (25, 2)
    assert float(pts[:, 0].min()) == -1 and float(pts[:, 1].max()) == 2


def test_plot_samples_density_and_curves():
    ax = plotting.plot_samples_density(torch.randn(500, 2), bins=20)
    assert len(ax.collections) == 1
    ax = plotting.plot_curves({"D": [1.0, 0.5, 0.4], "G": [2.0, 1.0, 0.5]}, smooth=2)
    assert len(ax.lines) == 2 and len(ax.lines[0].get_xdata()) == 2
    with pytest.raises(ValueError, match="history is empty"):
        plotting.plot_curves({})
    with pytest.raises(ValueError, match="non-empty sequence"):
        plotting.plot_curves({"loss": []})
    ax = plotting.plot_curves({"err": [0.5, 0.2, 0.1]}, x=[10, 100, 1000], logx=True, marker="o")
    assert list(ax.lines[0].get_xdata()) == [10, 100, 1000] and ax.get_xscale() == "log"
    with pytest.raises(ValueError, match="x has 2 values but history\\['err'\\] has 3"):
        plotting.plot_curves({"err": [0.5, 0.2, 0.1]}, x=[1, 2])


def test_use_course_style_sets_modest_dpi():
    plotting.use_course_style()
    assert plt.rcParams["figure.dpi"] == 72


def test_figures_reach_a_notebook_even_under_a_non_inline_backend(tmp_path, monkeypatch):
    # MPLBACKEND=Agg (as scripts/run_tests.sh exports) used to make plt.show() draw nothing
    # into an executed notebook; use_course_style() selects the inline backend in a kernel.
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("import matplotlib.pyplot as plt\n"
                                  "from course_utils.plotting import use_course_style\n"
                                  "use_course_style()"),
        nbformat.v4.new_code_cell("plt.plot([0, 1], [1, 0])\nplt.show()"),
    ]
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    kinds = [set(o.get("data", {})) for o in nb.cells[1].outputs]
    assert any("image/png" in k for k in kinds), nb.cells[1].outputs


def test_in_jupyter_kernel_is_false_outside_a_kernel():
    from course_utils.plotting import in_jupyter_kernel

    assert in_jupyter_kernel() is False
