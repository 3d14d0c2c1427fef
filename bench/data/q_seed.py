# corpus "seed": the repo's corpus/ folder
F = "2024-06-11-docker-k8s-relationship.md"
ROWS = [
    (F, "comparison", "k8s 和 Docker 是什么关系？", "说白了，我们用kubernetes去管理Docker集群"),
    (F, "comparison", "Docker 和虚拟机有什么区别？", "而Docker容器内的应用程序进程直接运行在宿主机(真实物理机)的内核上"),
    (F, "why", "为什么要用 Docker？", "就是统一环境"),
    (F, "definition", "Docker 是什么？", "Docker是一个开源的应用容器引擎"),
    (F, "definition", "k8s 官方是怎么定义的？", "k8s是一个开源的容器集群管理系统"),
    (F, "definition", "基础镜像是什么？", "这就是所谓的基础镜像(Base Image)"),
    (F, "comparison", "除了 Docker，kubernetes 还支持别的容器技术吗？", "还支持Rocket"),
    (F, "comparison", "容器有自己的内核吗？", "同时各个容器也没有自己的内核"),
    (F, "troubleshooting", "程序在我电脑上好好的，到别人那就跑不起来，这是为什么？", "而操作系统上又装了各种不同版本的依赖库和配置"),
    (F, "howto", "ubuntu 和 centos 上装 vim 的命令有什么不同？", "在 ubuntu，你需要执行 apt-get install vim，在 centos 里，你需要执行 yum install vim."),
    (F, "why", "跑 go 应用的镜像为什么不用装语言运行时？", "要跑 go 应用，那就。。什么都不需要装"),
    (F, "why", "为什么有了 Docker 还需要 kubernetes？", "故kubernetes技术便出现了"),
    (F, "definition", "构建应用环境为什么只需要操作系统的用户空间？", "只需要利用操作系统的用户空间部分，就能构建出应用所需的环境"),
]
