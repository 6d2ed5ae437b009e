"""The machine as baobab sees it: which ranks share a node and coarser groups."""


class Topology:
    """Nodes and coarser levels of a communicator.

    ``groups[L][r]`` is rank r's group at level L; level 0 is the node.
    """

    def __init__(self, d):
        self.size = d["size"]
        self.levels = d["levels"]
        self.level_names = list(d["level_names"])
        self.groups = [list(g) for g in d["groups"]]
        self.hosts = list(d["hosts"])
        self._local_rank = list(d["local_rank"])
        self._local_size = list(d["local_size"])
        self.leaders = list(d["leaders"])
        self.source = d["source"]
        self._describe = d["describe"]

    @property
    def num_nodes(self):
        return max(self.groups[0]) + 1 if self.size else 0

    @property
    def nodes(self):
        """Ranks of each node, by node id."""
        out = [[] for _ in range(self.num_nodes)]
        for r, n in enumerate(self.groups[0]):
            out[n].append(r)
        return out

    def node_of(self, rank):
        return self.groups[0][rank]

    def local_rank(self, rank):
        return self._local_rank[rank]

    def local_size(self, rank):
        return self._local_size[rank]

    def group_of(self, level, rank):
        return self.groups[level][rank]

    def describe(self):
        return self._describe

    def __repr__(self):
        return f"<Topology {self.size} ranks, {self.num_nodes} nodes, levels {self.level_names}>"
