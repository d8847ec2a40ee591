import pytest
import torch

from matssl_featurizers.encoders import CGCNNEncoder
from matssl_featurizers.graphs import collate, structure_to_graph
from matssl_featurizers.readouts import LayerStatistics, Part, PrincipalComponents, Set2Set, pool_rows


def test_layers_readout_pools_each_structure_with_the_statistics_written_out(structures):
    graphs = [structure_to_graph(s) for s in structures[:3]]
    batch = collate(graphs)
    encoder = CGCNNEncoder(readout="layers", out_dim=0, pool=["mean", "max", "min", "std"]).eval()
    with torch.no_grad():
        layers, _ = encoder.node_layers(batch)
        vectors = encoder(batch)
    width = encoder.config["atom_fea_len"]
    for g in range(3):
        h = layers[1][batch.batch == g]
        expected = torch.cat([h.mean(0), h.max(0).values, h.min(0).values, h.std(0, unbiased=False)])
        torch.testing.assert_close(vectors[g, 4 * width:8 * width], expected, atol=1e-5, rtol=1e-5)
    assert vectors.shape[1] == encoder.out_features == 4 * 4 * width + 41
    with pytest.raises(ValueError, match="median"):
        pool_rows(layers[0], batch.batch, 3, ["median"])


def test_set2set_matches_pytorch_geometric():
    from torch_geometric.nn.aggr import Set2Set as ReferenceSet2Set

    torch.manual_seed(0)
    reference, ours = ReferenceSet2Set(8, 3), Set2Set(8, 3)
    ours.load_state_dict(reference.state_dict())
    x, index = torch.randn(30, 8), torch.sort(torch.randint(0, 5, (30,))).values
    torch.testing.assert_close(ours(x, index, 5), reference(x, index, dim_size=5))



def test_layer_statistics_labels_name_the_part_statistic_and_channel():
    readout = LayerStatistics([Part("conv 1", ("0", "1"), ("mean", "std")), Part("state", ("0",), None),
                               Part("distance histogram", ("0.0 A", "0.2 A"), ("mean",))])
    assert readout.out_features == 2 * 2 + 1 + 2 == len(readout.labels())
    assert readout.labels() == ["conv 1 mean 0", "conv 1 mean 1", "conv 1 std 0", "conv 1 std 1", "state 0",
                                "distance histogram mean 0.0 A", "distance histogram mean 0.2 A"]
    values = [torch.tensor([[1.0, 2.0], [3.0, 6.0]]), torch.tensor([[7.0]]), torch.tensor([[0.5, 1.0]])]
    out = readout(values, [torch.tensor([0, 0]), None, torch.tensor([0])], 1)
    torch.testing.assert_close(out, torch.tensor([[2.0, 4.0, 1.0, 2.0, 7.0, 0.5, 1.0]]))


def test_principal_components_project_the_standardised_vector():
    components = PrincipalComponents(3, 2)
    components.center.copy_(torch.tensor([1.0, 0.0, 0.0]))
    components.scale.copy_(torch.tensor([2.0, 1.0, 1.0]))
    components.basis.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]))
    torch.testing.assert_close(components(torch.tensor([[3.0, 5.0, 7.0]])), torch.tensor([[1.0, 5.0]]))
    assert components.labels() == ["PC 1", "PC 2"] and components.out_features == 2
    with pytest.raises(ValueError, match="no principal components"):
        PrincipalComponents(3)(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="between 0 and the vector length 3"):
        PrincipalComponents(3, 4)
