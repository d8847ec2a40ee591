import torch

from matssl_featurizers.convolutions import CGCNNConv, MEGNetBlock
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
