# stub questions: (file, type, question); the best section is written but empty (待补充。。。)
F = "2024-06-11-docker-k8s-relationship.md"
DOCKERFILE = (91, 93)
ARCH = (95, 99)
ROWS = [
    (F, DOCKERFILE, "definition", "Dockerfile 是什么？"),
    (F, DOCKERFILE, "definition", "Dockerfile 是干什么用的？"),
    (F, DOCKERFILE, "howto", "怎么写一个 Dockerfile？"),
    (F, DOCKERFILE, "definition", "能解释一下 Dockerfile 吗？"),
    (F, DOCKERFILE, "howto", "用 Dockerfile 怎么基于基础镜像构建自己的镜像？"),
    (F, DOCKERFILE, "definition", "Dockerfile 和镜像是什么关系？"),
    (F, ARCH, "definition", "k8s 的架构是怎样的？"),
    (F, ARCH, "definition", "k8s 到底是什么？"),
    (F, ARCH, "definition", "kubernetes 的整体架构是什么样的？"),
    (F, ARCH, "definition", "k8s 由哪些部分组成？"),
    (F, ARCH, "definition", "能讲讲 k8s 的架构吗？"),
    (F, ARCH, "definition", "k8s 的架构图是怎么样的？"),
]
