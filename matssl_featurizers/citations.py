"""BibTeX of the architectures and pretraining methods (plain strings: importing this module is free)."""

CGCNN_CITATION = (
    "@article{xie2018crystal, title={Crystal Graph Convolutional Neural Networks for an Accurate and "
    "Interpretable Prediction of Material Properties}, author={Xie, Tian and Grossman, Jeffrey C.}, "
    "journal={Physical Review Letters}, volume={120}, pages={145301}, year={2018}, "
    "doi={10.1103/PhysRevLett.120.145301}}"
)
MEGNET_CITATION = (
    "@article{chen2019graph, title={Graph Networks as a Universal Machine Learning Framework for Molecules and "
    "Crystals}, author={Chen, Chi and Ye, Weike and Zuo, Yunxing and Zheng, Chen and Ong, Shyue Ping}, "
    "journal={Chemistry of Materials}, volume={31}, number={9}, pages={3564--3572}, year={2019}, "
    "doi={10.1021/acs.chemmater.9b01294}}"
)
SET2SET_CITATION = (
    "@inproceedings{vinyals2016order, title={Order Matters: Sequence to sequence for sets}, author={Vinyals, "
    "Oriol and Bengio, Samy and Kudlur, Manjunath}, booktitle={International Conference on Learning "
    "Representations (ICLR)}, year={2016}, eprint={1511.06391}}"
)
ARCHITECTURE_CITATIONS = {"cgcnn": [CGCNN_CITATION], "megnet": [MEGNET_CITATION, SET2SET_CITATION]}
ZAIDI_CITATION = (
    "@inproceedings{zaidi2023pretraining, title={Pre-training via Denoising for Molecular Property Prediction}, "
    "author={Zaidi, Sheheryar and Schaarschmidt, Michael and Martens, James and Kim, Hyunjik and Teh, Yee Whye and "
    "Sanchez-Gonzalez, Alvaro and Battaglia, Peter and Pascanu, Razvan and Godwin, Jonathan}, booktitle={International "
    "Conference on Learning Representations (ICLR)}, year={2023}, eprint={2206.00133}}"
)
HU_CITATION = (
    "@inproceedings{hu2020strategies, title={Strategies for Pre-training Graph Neural Networks}, author={Hu, Weihua and "
    "Liu, Bowen and Gomes, Joseph and Zitnik, Marinka and Liang, Percy and Pande, Vijay and Leskovec, Jure}, "
    "booktitle={International Conference on Learning Representations (ICLR)}, year={2020}, eprint={1905.12265}}"
)
CRYSATOM_CITATION = (
    "@inproceedings{mukherjee2024crysatom, title={CrysAtom: Distributed Representation of Atoms for Crystal "
    "Property Prediction}, author={Mukherjee, Shrimon and Ghosh, Madhusudan and Basuchowdhuri, Partha}, "
    "booktitle={Learning on Graphs Conference (LoG)}, year={2024}}"
)
METHOD_CITATIONS = {  # method -> BibTeX entries (masked-denoising is this project's; it builds on the two cited)
    "masked-denoising": [ZAIDI_CITATION, HU_CITATION],
    "crystal-twins": [(
        "@article{magar2022crystal, title={Crystal twins: self-supervised learning for crystalline material "
        "property prediction}, author={Magar, Rishikesh and Wang, Yuyang and Barati Farimani, Amir}, "
        "journal={npj Computational Materials}, volume={8}, pages={231}, year={2022}, "
        "doi={10.1038/s41524-022-00921-5}}"
    )],
    "crystalclr": [(
        "@inproceedings{koker2022graph, title={Graph Contrastive Learning for Materials}, author={Koker, Teddy and "
        "Quigley, Keegan and Spaeth, Will and Frey, Nathan C. and Li, Lin}, booktitle={NeurIPS 2022 Workshop on AI "
        "for Accelerated Materials Design}, year={2022}, eprint={2211.13408}, archivePrefix={arXiv}}"
    )],
    "cdssl": [(
        "@article{new2024self, title={Self-supervised learning for crystal property prediction via denoising}, "
        "author={New, Alexander and Le, Nam Q. and Pekala, Michael J. and Stiles, Christopher D.}, "
        "journal={arXiv preprint arXiv:2408.17255}, year={2024}}"
    )],
    "crysatom": [CRYSATOM_CITATION],
}
