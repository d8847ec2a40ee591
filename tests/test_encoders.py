import json

import pytest
import torch
from pymatgen.core import Lattice, Structure

from matssl_featurizers.encoders import CGCNNConv, CGCNNEncoder, MEGNetBlock, MEGNetEncoder, build_encoder, pool_rows
from matssl_featurizers.graphs import collate, structure_to_graph


def test_cgcnn_conv_matches_the_equation_written_out():
    torch.manual_seed(0)
    conv = CGCNNConv(atom_fea_len=4, edge_fea_len=3).eval()
    conv.bn_edge.running_mean.uniform_(-1, 1)
    conv.bn_node.running_var.uniform_(0.5, 2)
    h, edge_attr = torch.randn(3, 4), torch.randn(4, 3)
    edge_index = torch.tensor([[1, 2, 0, 0], [0, 0, 1, 2]])  # (source j, target i)
    out = conv(h, edge_index, edge_attr)
    expected = []
    for i in range(3):
        total = torch.zeros(4)
        for e in range(4):
            j, target = edge_index[:, e].tolist()
            if target == i:
                z = conv.bn_edge(conv.gate(torch.cat([h[i], h[j], edge_attr[e]]).unsqueeze(0)))[0]
                total += torch.sigmoid(z[:4]) * torch.nn.functional.softplus(z[4:])
        expected.append(torch.nn.functional.softplus(h[i] + conv.bn_node(total.unsqueeze(0))[0]))
    torch.testing.assert_close(out, torch.stack(expected))


@pytest.mark.parametrize("atom_input", ["embedding", "cgcnn92"])
def test_encoder_gives_one_finite_vector_per_structure(structures, atom_input):
    encoder = CGCNNEncoder(atom_input=atom_input, out_dim=32).eval()
    with torch.no_grad():
        out = encoder(collate([structure_to_graph(s) for s in structures[:5]]))
    assert out.shape == (5, 32) and torch.isfinite(out).all()


def test_isolated_site_gives_a_finite_vector(structures):
    lonely = Structure(Lattice.cubic(20.0), [structures[0][0].specie], [[0, 0, 0]])
    with torch.no_grad():
        out = CGCNNEncoder().eval()(collate([structure_to_graph(lonely)]))
    assert torch.isfinite(out).all()


def test_site_order_does_not_change_the_vector(structures):
    structure = structures[7]
    shuffled = Structure.from_sites([structure[i] for i in reversed(range(len(structure)))])
    encoder = CGCNNEncoder().eval()
    with torch.no_grad():
        a = encoder(collate([structure_to_graph(structure)]))
        b = encoder(collate([structure_to_graph(shuffled)]))
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


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
    assert vectors.shape[1] == CGCNNEncoder.vector_length(encoder.config) == 4 * 4 * width + 41
    with pytest.raises(ValueError, match="median"):
        pool_rows(layers[0], batch.batch, 3, ["median"])


def test_config_rebuilds_the_same_architecture():
    encoder = CGCNNEncoder(atom_input="cgcnn92", atom_fea_len=16, n_conv=2, out_dim=8)
    rebuilt = build_encoder(encoder.config)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in encoder.state_dict().items()}
    with pytest.raises(ValueError, match="does not fit"):
        build_encoder({**encoder.config, "n_layers": 3})
    with pytest.raises(ValueError, match="unknown architecture"):
        build_encoder({"architecture": "schnet"})


def test_element_without_input_vector_is_named():
    nobelium = Structure(Lattice.cubic(4.0), ["No"], [[0, 0, 0]])  # Z=102, beyond CGCNN's table
    with pytest.raises(ValueError, match="No"):
        CGCNNEncoder(atom_input="cgcnn92").eval()(collate([structure_to_graph(nobelium)]))


# -- MEGNet ----------------------------------------------------------------------------------------

def test_megnet_gives_set2set_nodes_edges_and_state(structures):
    encoder = MEGNetEncoder(width=8, hidden=16, n_blocks=2).eval()
    batch = collate([structure_to_graph(s) for s in structures[:5]])
    with torch.no_grad():
        out = encoder(batch)
        edges = encoder.edge_outputs(batch)
    assert out.shape == (5, 40) and encoder.out_dim == 40 and torch.isfinite(out).all()
    assert edges.shape == (batch.edge_index.shape[1], 8)


def test_megnet_vector_ignores_site_order_and_supercells(structures):
    structure = structures[7]
    shuffled = Structure.from_sites([structure[i] for i in reversed(range(len(structure)))])
    encoder = MEGNetEncoder().eval()
    with torch.no_grad():
        a, b, c = (encoder(collate([structure_to_graph(s)])) for s in (structure, shuffled, structure * (2, 2, 2)))
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a, c, atol=1e-5, rtol=1e-5)  # Set2Set attention and means: replication-invariant


def test_megnet_block_edge_update_matches_the_concatenation_written_out(structures):
    torch.manual_seed(0)
    block = MEGNetBlock(width=4, hidden=8)
    batch = collate([structure_to_graph(s) for s in structures[:2]])
    v, e, u = torch.randn(batch.num_nodes, 4), torch.randn(batch.edge_index.shape[1], 4), torch.randn(2, 4)
    v_out, e_out, _ = block(v, e, u, batch.edge_index, batch.batch)
    src, dst = batch.edge_index
    v1, e1, u1 = block.pre_v(v), block.pre_e(e), block.pre_u(u)
    expected_e = block.phi_e(torch.cat([v1[src], v1[dst], e1, u1[batch.batch[dst]]], dim=1))
    torch.testing.assert_close(e_out, e + expected_e, atol=1e-5, rtol=1e-5)
    mean_e = torch.stack([expected_e[dst == i].mean(0) for i in range(batch.num_nodes)])
    expected_v = block.phi_v(torch.cat([mean_e, v1, u1[batch.batch]], dim=1))
    torch.testing.assert_close(v_out, v + expected_v, atol=1e-5, rtol=1e-5)


def test_megnet_config_rebuilds_the_same_architecture():
    encoder = MEGNetEncoder(width=8, hidden=16, n_blocks=2, set2set_steps=2)
    rebuilt = build_encoder(json.loads(json.dumps(encoder.config)))
    assert isinstance(rebuilt, MEGNetEncoder)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in encoder.state_dict().items()}


def test_crysatom_vectors_are_fixed_encoder_inputs(structures):
    from matssl_featurizers.atom_vectors import load_atom_vectors

    table = load_atom_vectors("crysatom")
    encoder = CGCNNEncoder(atom_input="crysatom", atom_fea_len=16, n_conv=2, out_dim=8)
    assert encoder.embedding.in_features == table.shape[1]
    torch.testing.assert_close(encoder.element_table[26].double(), torch.tensor(table.loc["Fe"].to_numpy()), rtol=1e-6, atol=1e-6)
    assert "element_table" not in dict(encoder.named_parameters()), "the vectors are not trained"
    out = encoder(collate([structure_to_graph(s) for s in structures[:8]]))
    out.sum().backward()
    assert torch.isfinite(out).all() and encoder.embedding.weight.grad is not None
    oganesson = Structure(Lattice.cubic(4.0), ["Og"], [[0, 0, 0]])
    with pytest.raises(ValueError, match="no crysatom input vector for element.s. Og"):
        encoder.eval()(collate([structure_to_graph(oganesson)]))


def test_set2set_matches_pytorch_geometric():
    from torch_geometric.nn.aggr import Set2Set as ReferenceSet2Set

    from matssl_featurizers.encoders import Set2Set

    torch.manual_seed(0)
    reference, ours = ReferenceSet2Set(8, 3), Set2Set(8, 3)
    ours.load_state_dict(reference.state_dict())
    x, index = torch.randn(30, 8), torch.sort(torch.randint(0, 5, (30,))).values
    torch.testing.assert_close(ours(x, index, 5), reference(x, index, dim_size=5))
