import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LaunchRequest(_message.Message):
    __slots__ = ("instance_name", "image", "num_cores", "mem_size", "disk_space", "cloud_init_user_data", "remote_name", "verbosity_level", "timeout")
    INSTANCE_NAME_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    NUM_CORES_FIELD_NUMBER: _ClassVar[int]
    MEM_SIZE_FIELD_NUMBER: _ClassVar[int]
    DISK_SPACE_FIELD_NUMBER: _ClassVar[int]
    CLOUD_INIT_USER_DATA_FIELD_NUMBER: _ClassVar[int]
    REMOTE_NAME_FIELD_NUMBER: _ClassVar[int]
    VERBOSITY_LEVEL_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    instance_name: str
    image: str
    num_cores: int
    mem_size: str
    disk_space: str
    cloud_init_user_data: str
    remote_name: str
    verbosity_level: int
    timeout: int
    def __init__(self, instance_name: _Optional[str] = ..., image: _Optional[str] = ..., num_cores: _Optional[int] = ..., mem_size: _Optional[str] = ..., disk_space: _Optional[str] = ..., cloud_init_user_data: _Optional[str] = ..., remote_name: _Optional[str] = ..., verbosity_level: _Optional[int] = ..., timeout: _Optional[int] = ...) -> None: ...

class LaunchProgress(_message.Message):
    __slots__ = ("type", "percent_complete")
    class ProgressTypes(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        IMAGE: _ClassVar[LaunchProgress.ProgressTypes]
        EXTRACT: _ClassVar[LaunchProgress.ProgressTypes]
        VERIFY: _ClassVar[LaunchProgress.ProgressTypes]
        WAITING: _ClassVar[LaunchProgress.ProgressTypes]
    IMAGE: LaunchProgress.ProgressTypes
    EXTRACT: LaunchProgress.ProgressTypes
    VERIFY: LaunchProgress.ProgressTypes
    WAITING: LaunchProgress.ProgressTypes
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PERCENT_COMPLETE_FIELD_NUMBER: _ClassVar[int]
    type: LaunchProgress.ProgressTypes
    percent_complete: str
    def __init__(self, type: _Optional[_Union[LaunchProgress.ProgressTypes, str]] = ..., percent_complete: _Optional[str] = ...) -> None: ...

class LaunchReply(_message.Message):
    __slots__ = ("vm_instance_name", "launch_progress", "create_message", "log_line", "reply_message")
    VM_INSTANCE_NAME_FIELD_NUMBER: _ClassVar[int]
    LAUNCH_PROGRESS_FIELD_NUMBER: _ClassVar[int]
    CREATE_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    LOG_LINE_FIELD_NUMBER: _ClassVar[int]
    REPLY_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    vm_instance_name: str
    launch_progress: LaunchProgress
    create_message: str
    log_line: str
    reply_message: str
    def __init__(self, vm_instance_name: _Optional[str] = ..., launch_progress: _Optional[_Union[LaunchProgress, _Mapping]] = ..., create_message: _Optional[str] = ..., log_line: _Optional[str] = ..., reply_message: _Optional[str] = ...) -> None: ...

class PurgeRequest(_message.Message):
    __slots__ = ("verbosity_level",)
    VERBOSITY_LEVEL_FIELD_NUMBER: _ClassVar[int]
    verbosity_level: int
    def __init__(self, verbosity_level: _Optional[int] = ...) -> None: ...

class PurgeReply(_message.Message):
    __slots__ = ("log_line", "purged_instances")
    LOG_LINE_FIELD_NUMBER: _ClassVar[int]
    PURGED_INSTANCES_FIELD_NUMBER: _ClassVar[int]
    log_line: str
    purged_instances: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, log_line: _Optional[str] = ..., purged_instances: _Optional[_Iterable[str]] = ...) -> None: ...

class FindRequest(_message.Message):
    __slots__ = ("search_string", "remote_name", "verbosity_level", "allow_unsupported", "force_manifest_network_download")
    SEARCH_STRING_FIELD_NUMBER: _ClassVar[int]
    REMOTE_NAME_FIELD_NUMBER: _ClassVar[int]
    VERBOSITY_LEVEL_FIELD_NUMBER: _ClassVar[int]
    ALLOW_UNSUPPORTED_FIELD_NUMBER: _ClassVar[int]
    FORCE_MANIFEST_NETWORK_DOWNLOAD_FIELD_NUMBER: _ClassVar[int]
    search_string: str
    remote_name: str
    verbosity_level: int
    allow_unsupported: bool
    force_manifest_network_download: bool
    def __init__(self, search_string: _Optional[str] = ..., remote_name: _Optional[str] = ..., verbosity_level: _Optional[int] = ..., allow_unsupported: _Optional[bool] = ..., force_manifest_network_download: _Optional[bool] = ...) -> None: ...

class FindReply(_message.Message):
    __slots__ = ("images_info", "log_line")
    class ImageInfo(_message.Message):
        __slots__ = ("os", "release", "version", "aliases", "codename", "remote_name")
        OS_FIELD_NUMBER: _ClassVar[int]
        RELEASE_FIELD_NUMBER: _ClassVar[int]
        VERSION_FIELD_NUMBER: _ClassVar[int]
        ALIASES_FIELD_NUMBER: _ClassVar[int]
        CODENAME_FIELD_NUMBER: _ClassVar[int]
        REMOTE_NAME_FIELD_NUMBER: _ClassVar[int]
        os: str
        release: str
        version: str
        aliases: _containers.RepeatedScalarFieldContainer[str]
        codename: str
        remote_name: str
        def __init__(self, os: _Optional[str] = ..., release: _Optional[str] = ..., version: _Optional[str] = ..., aliases: _Optional[_Iterable[str]] = ..., codename: _Optional[str] = ..., remote_name: _Optional[str] = ...) -> None: ...
    IMAGES_INFO_FIELD_NUMBER: _ClassVar[int]
    LOG_LINE_FIELD_NUMBER: _ClassVar[int]
    images_info: _containers.RepeatedCompositeFieldContainer[FindReply.ImageInfo]
    log_line: str
    def __init__(self, images_info: _Optional[_Iterable[_Union[FindReply.ImageInfo, _Mapping]]] = ..., log_line: _Optional[str] = ...) -> None: ...

class InstanceSnapshotPair(_message.Message):
    __slots__ = ("instance_name", "snapshot_name")
    INSTANCE_NAME_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_NAME_FIELD_NUMBER: _ClassVar[int]
    instance_name: str
    snapshot_name: str
    def __init__(self, instance_name: _Optional[str] = ..., snapshot_name: _Optional[str] = ...) -> None: ...

class InfoRequest(_message.Message):
    __slots__ = ("instance_snapshot_pairs", "verbosity_level", "no_runtime_information", "snapshots")
    INSTANCE_SNAPSHOT_PAIRS_FIELD_NUMBER: _ClassVar[int]
    VERBOSITY_LEVEL_FIELD_NUMBER: _ClassVar[int]
    NO_RUNTIME_INFORMATION_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOTS_FIELD_NUMBER: _ClassVar[int]
    instance_snapshot_pairs: _containers.RepeatedCompositeFieldContainer[InstanceSnapshotPair]
    verbosity_level: int
    no_runtime_information: bool
    snapshots: bool
    def __init__(self, instance_snapshot_pairs: _Optional[_Iterable[_Union[InstanceSnapshotPair, _Mapping]]] = ..., verbosity_level: _Optional[int] = ..., no_runtime_information: _Optional[bool] = ..., snapshots: _Optional[bool] = ...) -> None: ...

class InstanceStatus(_message.Message):
    __slots__ = ("status",)
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        UNKNOWN: _ClassVar[InstanceStatus.Status]
        RUNNING: _ClassVar[InstanceStatus.Status]
        STARTING: _ClassVar[InstanceStatus.Status]
        RESTARTING: _ClassVar[InstanceStatus.Status]
        STOPPED: _ClassVar[InstanceStatus.Status]
        DELETED: _ClassVar[InstanceStatus.Status]
        DELAYED_SHUTDOWN: _ClassVar[InstanceStatus.Status]
        SUSPENDING: _ClassVar[InstanceStatus.Status]
        SUSPENDED: _ClassVar[InstanceStatus.Status]
        UNAVAILABLE: _ClassVar[InstanceStatus.Status]
    UNKNOWN: InstanceStatus.Status
    RUNNING: InstanceStatus.Status
    STARTING: InstanceStatus.Status
    RESTARTING: InstanceStatus.Status
    STOPPED: InstanceStatus.Status
    DELETED: InstanceStatus.Status
    DELAYED_SHUTDOWN: InstanceStatus.Status
    SUSPENDING: InstanceStatus.Status
    SUSPENDED: InstanceStatus.Status
    UNAVAILABLE: InstanceStatus.Status
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: InstanceStatus.Status
    def __init__(self, status: _Optional[_Union[InstanceStatus.Status, str]] = ...) -> None: ...

class InstanceDetails(_message.Message):
    __slots__ = ("image_release", "current_release", "id", "load", "memory_usage", "disk_usage", "ipv4", "creation_timestamp")
    IMAGE_RELEASE_FIELD_NUMBER: _ClassVar[int]
    CURRENT_RELEASE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    LOAD_FIELD_NUMBER: _ClassVar[int]
    MEMORY_USAGE_FIELD_NUMBER: _ClassVar[int]
    DISK_USAGE_FIELD_NUMBER: _ClassVar[int]
    IPV4_FIELD_NUMBER: _ClassVar[int]
    CREATION_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    image_release: str
    current_release: str
    id: str
    load: str
    memory_usage: str
    disk_usage: str
    ipv4: _containers.RepeatedScalarFieldContainer[str]
    creation_timestamp: _timestamp_pb2.Timestamp
    def __init__(self, image_release: _Optional[str] = ..., current_release: _Optional[str] = ..., id: _Optional[str] = ..., load: _Optional[str] = ..., memory_usage: _Optional[str] = ..., disk_usage: _Optional[str] = ..., ipv4: _Optional[_Iterable[str]] = ..., creation_timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DetailedInfoItem(_message.Message):
    __slots__ = ("name", "instance_status", "memory_total", "disk_total", "cpu_count", "instance_info")
    NAME_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_STATUS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_TOTAL_FIELD_NUMBER: _ClassVar[int]
    DISK_TOTAL_FIELD_NUMBER: _ClassVar[int]
    CPU_COUNT_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_INFO_FIELD_NUMBER: _ClassVar[int]
    name: str
    instance_status: InstanceStatus
    memory_total: str
    disk_total: str
    cpu_count: str
    instance_info: InstanceDetails
    def __init__(self, name: _Optional[str] = ..., instance_status: _Optional[_Union[InstanceStatus, _Mapping]] = ..., memory_total: _Optional[str] = ..., disk_total: _Optional[str] = ..., cpu_count: _Optional[str] = ..., instance_info: _Optional[_Union[InstanceDetails, _Mapping]] = ...) -> None: ...

class InfoReply(_message.Message):
    __slots__ = ("details", "snapshots", "log_line")
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOTS_FIELD_NUMBER: _ClassVar[int]
    LOG_LINE_FIELD_NUMBER: _ClassVar[int]
    details: _containers.RepeatedCompositeFieldContainer[DetailedInfoItem]
    snapshots: bool
    log_line: str
    def __init__(self, details: _Optional[_Iterable[_Union[DetailedInfoItem, _Mapping]]] = ..., snapshots: _Optional[bool] = ..., log_line: _Optional[str] = ...) -> None: ...

class ListRequest(_message.Message):
    __slots__ = ("verbosity_level", "snapshots", "request_ipv4")
    VERBOSITY_LEVEL_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOTS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_IPV4_FIELD_NUMBER: _ClassVar[int]
    verbosity_level: int
    snapshots: bool
    request_ipv4: bool
    def __init__(self, verbosity_level: _Optional[int] = ..., snapshots: _Optional[bool] = ..., request_ipv4: _Optional[bool] = ...) -> None: ...

class ListVMInstance(_message.Message):
    __slots__ = ("name", "instance_status", "ipv4", "current_release")
    NAME_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_STATUS_FIELD_NUMBER: _ClassVar[int]
    IPV4_FIELD_NUMBER: _ClassVar[int]
    CURRENT_RELEASE_FIELD_NUMBER: _ClassVar[int]
    name: str
    instance_status: InstanceStatus
    ipv4: _containers.RepeatedScalarFieldContainer[str]
    current_release: str
    def __init__(self, name: _Optional[str] = ..., instance_status: _Optional[_Union[InstanceStatus, _Mapping]] = ..., ipv4: _Optional[_Iterable[str]] = ..., current_release: _Optional[str] = ...) -> None: ...

class InstancesList(_message.Message):
    __slots__ = ("instances",)
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    instances: _containers.RepeatedCompositeFieldContainer[ListVMInstance]
    def __init__(self, instances: _Optional[_Iterable[_Union[ListVMInstance, _Mapping]]] = ...) -> None: ...

class ListReply(_message.Message):
    __slots__ = ("instance_list", "log_line")
    INSTANCE_LIST_FIELD_NUMBER: _ClassVar[int]
    LOG_LINE_FIELD_NUMBER: _ClassVar[int]
    instance_list: InstancesList
    log_line: str
    def __init__(self, instance_list: _Optional[_Union[InstancesList, _Mapping]] = ..., log_line: _Optional[str] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("instance_snapshot_pairs", "purge", "verbosity_level")
    INSTANCE_SNAPSHOT_PAIRS_FIELD_NUMBER: _ClassVar[int]
    PURGE_FIELD_NUMBER: _ClassVar[int]
    VERBOSITY_LEVEL_FIELD_NUMBER: _ClassVar[int]
    instance_snapshot_pairs: _containers.RepeatedCompositeFieldContainer[InstanceSnapshotPair]
    purge: bool
    verbosity_level: int
    def __init__(self, instance_snapshot_pairs: _Optional[_Iterable[_Union[InstanceSnapshotPair, _Mapping]]] = ..., purge: _Optional[bool] = ..., verbosity_level: _Optional[int] = ...) -> None: ...

class DeleteReply(_message.Message):
    __slots__ = ("log_line", "purged_instances")
    LOG_LINE_FIELD_NUMBER: _ClassVar[int]
    PURGED_INSTANCES_FIELD_NUMBER: _ClassVar[int]
    log_line: str
    purged_instances: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, log_line: _Optional[str] = ..., purged_instances: _Optional[_Iterable[str]] = ...) -> None: ...

class VersionRequest(_message.Message):
    __slots__ = ("verbosity_level",)
    VERBOSITY_LEVEL_FIELD_NUMBER: _ClassVar[int]
    verbosity_level: int
    def __init__(self, verbosity_level: _Optional[int] = ...) -> None: ...

class VersionReply(_message.Message):
    __slots__ = ("version", "log_line")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    LOG_LINE_FIELD_NUMBER: _ClassVar[int]
    version: str
    log_line: str
    def __init__(self, version: _Optional[str] = ..., log_line: _Optional[str] = ...) -> None: ...

class AuthenticateRequest(_message.Message):
    __slots__ = ("passphrase", "verbosity_level")
    PASSPHRASE_FIELD_NUMBER: _ClassVar[int]
    VERBOSITY_LEVEL_FIELD_NUMBER: _ClassVar[int]
    passphrase: str
    verbosity_level: int
    def __init__(self, passphrase: _Optional[str] = ..., verbosity_level: _Optional[int] = ...) -> None: ...

class AuthenticateReply(_message.Message):
    __slots__ = ("log_line",)
    LOG_LINE_FIELD_NUMBER: _ClassVar[int]
    log_line: str
    def __init__(self, log_line: _Optional[str] = ...) -> None: ...

class DaemonInfoRequest(_message.Message):
    __slots__ = ("verbosity_level",)
    VERBOSITY_LEVEL_FIELD_NUMBER: _ClassVar[int]
    verbosity_level: int
    def __init__(self, verbosity_level: _Optional[int] = ...) -> None: ...

class DaemonInfoReply(_message.Message):
    __slots__ = ("log_line", "available_space", "cpus", "memory")
    LOG_LINE_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_SPACE_FIELD_NUMBER: _ClassVar[int]
    CPUS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    log_line: str
    available_space: int
    cpus: int
    memory: int
    def __init__(self, log_line: _Optional[str] = ..., available_space: _Optional[int] = ..., cpus: _Optional[int] = ..., memory: _Optional[int] = ...) -> None: ...
