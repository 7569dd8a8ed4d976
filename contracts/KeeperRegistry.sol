// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Address} from "@openzeppelin/contracts/utils/Address.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

/// @title KeeperRegistry
/// @notice Stake, keeper set, epochs and stake-weighted quorums of the keeper network.
/// @dev Quorums are committed by hash only; the member lists travel in `QuorumFormed` logs and in
///      `TaskManager.execute` calldata, which is far cheaper than reading members from storage.
///      A member word is `address << 96 | stake` (stake snapshotted at rotation, as uint96).
contract KeeperRegistry is ReentrancyGuardTransient {
    /// @notice Lifecycle of a keeper. `Withdrawn` keepers may register again; `Slashed` ones may not.
    enum Status {
        None,
        Active,
        Exiting,
        Slashed,
        Withdrawn
    }

    struct Keeper {
        uint96 stake;
        Status status;
        uint64 exitEpoch; // epoch during which the exit was requested
        uint64 unbondAt; // timestamp from which `withdraw` is allowed
        uint32 index; // position in `_keeperList` + 1 (0 = not listed)
    }

    /// @dev The current epoch's header, packed in one slot: it is all an execution reads here
    ///      besides the quorum's hash. The seed is the top 128 bits of its keccak256.
    struct Current {
        uint64 epoch;
        uint48 startBlock;
        uint16 count;
        bytes16 seed;
    }

    /// @dev What only rotation and the keeper-set functions touch.
    struct Timing {
        uint64 startTime;
        bool setChanged;
    }

    /// @notice Blocks after a rotation during which reports of the previous epoch stay valid.
    uint64 public constant EPOCH_GRACE_BLOCKS = 20;
    /// @notice Most keepers the registry holds, so that `rotate` stays within a block's gas.
    uint256 public constant MAX_KEEPERS = 256;
    /// @notice Share of a slashed stake paid to the reporter, in basis points.
    uint256 public constant SLASH_REWARD_BPS = 1000;
    /// @notice Longest endpoint URL accepted, in bytes.
    uint256 public constant MAX_ENDPOINT_LENGTH = 256;

    uint256 public immutable minStake;
    uint64 public immutable unbondingPeriod;
    uint64 public immutable epochLength;
    uint16 public immutable targetQuorumSize;
    address private immutable _deployer;

    address public taskManager;
    /// @notice Slashed stake not paid out as rewards; it stays locked in this contract.
    uint256 public slashedFunds;

    Current private _current;
    Timing private _timing;
    mapping(address keeper => Keeper) private _keepers;
    mapping(address keeper => string) private _endpoints;
    address[] private _keeperList;
    mapping(uint64 epoch => bytes32) private _epochSeed;
    mapping(uint64 epoch => uint16) private _epochCount;
    mapping(uint64 epoch => mapping(uint16 quorum => bytes32)) private _quorumHash;

    event KeeperRegistered(address indexed keeper, uint256 stake, string endpoint);
    event StakeAdded(address indexed keeper, uint256 amount, uint256 total);
    event EndpointSet(address indexed keeper, string endpoint);
    event ExitRequested(address indexed keeper, uint64 epoch, uint64 unbondAt);
    event Withdrawn(address indexed keeper, uint256 amount);
    event Slashed(address indexed keeper, address indexed reporter, uint256 amount, uint256 reward);
    event EpochStarted(uint64 indexed epoch, bytes32 seed, uint16 quorumCount);
    event QuorumFormed(uint64 indexed epoch, uint16 indexed quorum, bytes32[] members);
    event TaskManagerSet(address taskManager);

    error InvalidConfig();
    error NotDeployer(address caller);
    error TaskManagerAlreadySet(address taskManager);
    error NotTaskManager(address caller);
    error StakeBelowMinimum(uint256 stake, uint256 minStake);
    error StakeOverflow();
    error AlreadyRegistered(address keeper);
    error KeeperWasSlashed(address keeper);
    error RegistryFull(uint256 maxKeepers);
    error InvalidEndpoint();
    error NotActive(address keeper);
    error NotExiting(address keeper);
    error StillInQuorum(address keeper, uint64 exitEpoch);
    error Unbonding(address keeper, uint256 until);
    error ZeroValue();
    error NothingToSlash(address keeper);
    error RotationNotDue(uint256 dueAt);
    error NoActiveKeepers();
    error EpochNotActive(uint64 epoch, uint64 currentEpoch);
    error UnknownEpoch(uint64 epoch);
    error QuorumOutOfRange(uint16 quorum, uint16 count);

    /// @param minStake_ smallest stake that makes a keeper eligible for quorums
    /// @param unbondingPeriod_ seconds between `requestExit` and `withdraw`
    /// @param epochLength_ seconds after which `rotate` may start a new epoch in any case
    /// @param targetQuorumSize_ keepers per quorum the rotation aims at (quorums = K / target)
    constructor(uint256 minStake_, uint64 unbondingPeriod_, uint64 epochLength_, uint16 targetQuorumSize_) {
        if (minStake_ == 0 || minStake_ > type(uint96).max || epochLength_ == 0 || targetQuorumSize_ == 0) {
            revert InvalidConfig();
        }
        minStake = minStake_;
        unbondingPeriod = unbondingPeriod_;
        epochLength = epochLength_;
        targetQuorumSize = targetQuorumSize_;
        _deployer = msg.sender;
    }

    modifier onlyTaskManager() {
        if (msg.sender != taskManager) revert NotTaskManager(msg.sender);
        _;
    }

    /// @notice Binds the TaskManager allowed to slash. Called once, by the deployer, at deployment.
    function setTaskManager(address taskManager_) external {
        if (msg.sender != _deployer) revert NotDeployer(msg.sender);
        if (taskManager != address(0)) revert TaskManagerAlreadySet(taskManager);
        if (taskManager_.code.length == 0) revert InvalidConfig();
        taskManager = taskManager_;
        emit TaskManagerSet(taskManager_);
    }

    // ------------------------------------------------------------------ keepers

    /// @notice Registers `msg.sender` as a keeper with `msg.value` as stake.
    /// @param endpoint http(s)://host:port of the node's peer API
    function register(string calldata endpoint) external payable {
        Keeper storage k = _keepers[msg.sender];
        if (k.status == Status.Slashed) revert KeeperWasSlashed(msg.sender);
        if (k.status != Status.None && k.status != Status.Withdrawn) revert AlreadyRegistered(msg.sender);
        if (msg.value < minStake) revert StakeBelowMinimum(msg.value, minStake);
        if (msg.value > type(uint96).max) revert StakeOverflow();
        _checkEndpoint(endpoint);
        if (_keeperList.length >= MAX_KEEPERS) revert RegistryFull(MAX_KEEPERS);

        _keeperList.push(msg.sender);
        k.stake = uint96(msg.value);
        k.status = Status.Active;
        k.exitEpoch = 0;
        k.unbondAt = 0;
        k.index = uint32(_keeperList.length);
        _endpoints[msg.sender] = endpoint;
        _timing.setChanged = true;
        emit KeeperRegistered(msg.sender, msg.value, endpoint);
    }

    /// @notice Adds `msg.value` to the caller's stake; it counts from the next epoch.
    function addStake() external payable {
        Keeper storage k = _keepers[msg.sender];
        if (k.status != Status.Active) revert NotActive(msg.sender);
        if (msg.value == 0) revert ZeroValue();
        uint256 total = uint256(k.stake) + msg.value;
        if (total > type(uint96).max) revert StakeOverflow();
        k.stake = uint96(total);
        _timing.setChanged = true;
        emit StakeAdded(msg.sender, msg.value, total);
    }

    /// @notice Changes the URL peers use to reach the caller's node.
    function setEndpoint(string calldata endpoint) external {
        Status s = _keepers[msg.sender].status;
        if (s != Status.Active && s != Status.Exiting) revert NotActive(msg.sender);
        _checkEndpoint(endpoint);
        _endpoints[msg.sender] = endpoint;
        emit EndpointSet(msg.sender, endpoint);
    }

    /// @notice Leaves the keeper set at the next epoch; unbonding starts now.
    function requestExit() external {
        Keeper storage k = _keepers[msg.sender];
        if (k.status != Status.Active) revert NotActive(msg.sender);
        k.status = Status.Exiting;
        k.exitEpoch = _current.epoch;
        k.unbondAt = uint64(block.timestamp) + unbondingPeriod;
        _timing.setChanged = true;
        emit ExitRequested(msg.sender, k.exitEpoch, k.unbondAt);
    }

    /// @notice Returns the stake of an exited keeper once it has left every quorum (grace included)
    ///         and the unbonding period has passed.
    function withdraw() external nonReentrant {
        Keeper storage k = _keepers[msg.sender];
        if (k.status != Status.Exiting) revert NotExiting(msg.sender);
        Current memory c = _current;
        // Still slashable while a report of its last epoch can be executed.
        if (c.epoch <= k.exitEpoch || block.number <= c.startBlock + EPOCH_GRACE_BLOCKS) {
            revert StillInQuorum(msg.sender, k.exitEpoch);
        }
        if (block.timestamp < k.unbondAt) revert Unbonding(msg.sender, k.unbondAt);
        uint256 amount = k.stake;
        k.stake = 0;
        k.status = Status.Withdrawn;
        _unlist(msg.sender);
        emit Withdrawn(msg.sender, amount);
        Address.sendValue(payable(msg.sender), amount);
    }

    /// @notice Takes the whole stake of `keeper`; `reporter` gets SLASH_REWARD_BPS of it.
    /// @dev Only the TaskManager calls this, after it has proven an equivocation.
    function slash(address keeper, address reporter) external onlyTaskManager nonReentrant {
        Keeper storage k = _keepers[keeper];
        if ((k.status != Status.Active && k.status != Status.Exiting) || k.stake == 0) {
            revert NothingToSlash(keeper);
        }
        uint256 amount = k.stake;
        uint256 reward = (amount * SLASH_REWARD_BPS) / 10_000;
        k.stake = 0;
        k.status = Status.Slashed;
        _unlist(keeper);
        slashedFunds += amount - reward;
        _timing.setChanged = true;
        emit Slashed(keeper, reporter, amount, reward);
        if (reward != 0) Address.sendValue(payable(reporter), reward);
    }

    // ------------------------------------------------------------------ epochs

    /// @notice Starts a new epoch when `epochLength` has passed, or at once (from the next block)
    ///         after the keeper set changed; re-forms the quorums from the active, staked keepers.
    function rotate() external {
        Current memory c = _current;
        Timing memory t = _timing;
        if (c.epoch != 0) {
            bool due = block.timestamp >= uint256(t.startTime) + epochLength;
            bool early = t.setChanged && block.number > c.startBlock;
            if (!due && !early) revert RotationNotDue(uint256(t.startTime) + epochLength);
        }
        uint64 epoch = c.epoch + 1;
        bytes32 seed = bytes16(keccak256(abi.encode(block.prevrandao, blockhash(block.number - 1), epoch)));

        (address[] memory active, uint256 k) = _activeKeepers();
        if (k == 0) revert NoActiveKeepers();
        uint256[] memory order = new uint256[](k);
        for (uint256 i = 0; i < k; ++i) {
            order[i] = _sortKey(seed, active[i]);
        }
        _sort(order);

        uint256 q = k / targetQuorumSize;
        if (q == 0) q = 1;
        if (q > type(uint16).max) q = type(uint16).max;

        _current = Current({epoch: epoch, startBlock: uint48(block.number), count: uint16(q), seed: bytes16(seed)});
        _timing = Timing({startTime: uint64(block.timestamp), setChanged: false});
        _epochSeed[epoch] = seed;
        _epochCount[epoch] = uint16(q);
        emit EpochStarted(epoch, seed, uint16(q));

        for (uint256 j = 0; j < q; ++j) {
            uint256 size = k / q + (j < k % q ? 1 : 0);
            uint256[] memory words = new uint256[](size);
            for (uint256 m = 0; m < size; ++m) {
                address a = address(uint160(order[j + m * q]));
                words[m] = (uint256(uint160(a)) << 96) | _keepers[a].stake;
            }
            _sort(words);
            bytes32[] memory members;
            assembly ("memory-safe") {
                members := words
            }
            _quorumHash[epoch][uint16(j)] = keccak256(abi.encodePacked(members));
            emit QuorumFormed(epoch, uint16(j), members);
        }
    }

    // ------------------------------------------------------------------ views

    /// @notice The epoch that reports must name (0 before the first rotation).
    function currentEpoch() external view returns (uint64) {
        return _current.epoch;
    }

    /// @notice Block, time and set-change flag of the current epoch, and when `rotate` is due.
    function epochState()
        external
        view
        returns (uint64 epoch, uint64 startBlock, uint64 startTime, uint16 count, bool setChanged, uint256 dueAt)
    {
        Current memory c = _current;
        Timing memory t = _timing;
        return (c.epoch, c.startBlock, t.startTime, c.count, t.setChanged, uint256(t.startTime) + epochLength);
    }

    /// @notice Whether `rotate()` would succeed in the next block.
    function canRotate() external view returns (bool) {
        Current memory c = _current;
        Timing memory t = _timing;
        if (c.epoch == 0) return _keeperList.length != 0;
        return block.timestamp >= uint256(t.startTime) + epochLength || t.setChanged;
    }

    /// @notice The epoch's seed: the top 128 bits of keccak256(abi.encode(prevrandao,
    ///         blockhash(block.number - 1), epoch)), left-aligned in a bytes32. Member order and
    ///         quorumOf hash this bytes32; 128 bits keep the current epoch's header in one slot.
    function epochSeed(uint64 epoch) external view returns (bytes32) {
        return _epochSeed[epoch];
    }

    function quorumCount(uint64 epoch) external view returns (uint16) {
        return _epochCount[epoch];
    }

    function quorumHash(uint64 epoch, uint16 quorum) external view returns (bytes32) {
        uint16 count = _epochCount[epoch];
        if (count == 0) revert UnknownEpoch(epoch);
        if (quorum >= count) revert QuorumOutOfRange(quorum, count);
        return _quorumHash[epoch][quorum];
    }

    /// @notice The quorum that serves `jobId` in `epoch`: keccak256(abi.encode(seed, jobId)) % count.
    function quorumOf(uint256 jobId, uint64 epoch) external view returns (uint16) {
        uint16 count = _epochCount[epoch];
        if (count == 0) revert UnknownEpoch(epoch);
        return uint16(uint256(keccak256(abi.encode(_epochSeed[epoch], jobId))) % count);
    }

    /// @notice What `execute` needs in one call: the job's quorum and its committed hash, for an
    ///         epoch that is current or previous within the grace period.
    function quorumFor(uint64 epoch, uint256 jobId) external view returns (uint16 quorum, bytes32 hash) {
        Current memory c = _current;
        uint16 count;
        bytes32 seed;
        if (epoch == c.epoch && epoch != 0) {
            (count, seed) = (c.count, bytes32(c.seed));
        } else if (epoch != 0 && epoch + 1 == c.epoch && block.number <= c.startBlock + EPOCH_GRACE_BLOCKS) {
            (count, seed) = (_epochCount[epoch], _epochSeed[epoch]);
        } else {
            revert EpochNotActive(epoch, c.epoch);
        }
        quorum = uint16(uint256(keccak256(abi.encode(seed, jobId))) % count);
        hash = _quorumHash[epoch][quorum];
    }

    function keeperInfo(address keeper)
        external
        view
        returns (uint256 stake, Status status, uint64 exitEpoch, uint64 unbondAt, string memory endpoint)
    {
        Keeper memory k = _keepers[keeper];
        return (k.stake, k.status, k.exitEpoch, k.unbondAt, _endpoints[keeper]);
    }

    function endpointOf(address keeper) external view returns (string memory) {
        return _endpoints[keeper];
    }

    /// @notice Every listed keeper (active, exiting, not yet withdrawn).
    function keepers() external view returns (address[] memory) {
        return _keeperList;
    }

    // ------------------------------------------------------------------ internals

    function _checkEndpoint(string calldata endpoint) private pure {
        uint256 n = bytes(endpoint).length;
        if (n == 0 || n > MAX_ENDPOINT_LENGTH) revert InvalidEndpoint();
    }

    function _activeKeepers() private view returns (address[] memory active, uint256 k) {
        uint256 n = _keeperList.length;
        active = new address[](n);
        uint256 min = minStake;
        for (uint256 i = 0; i < n; ++i) {
            address a = _keeperList[i];
            Keeper storage kp = _keepers[a];
            if (kp.status == Status.Active && kp.stake >= min) active[k++] = a;
        }
    }

    /// @dev Top 96 bits of keccak256(abi.encode(seed, keeper)), then the address as tie-break.
    function _sortKey(bytes32 seed, address keeper) private pure returns (uint256) {
        uint256 h = uint256(keccak256(abi.encode(seed, keeper)));
        return ((h >> 160) << 160) | uint160(keeper);
    }

    function _unlist(address keeper) private {
        Keeper storage k = _keepers[keeper];
        uint256 idx = k.index;
        if (idx == 0) return;
        uint256 last = _keeperList.length;
        if (idx != last) {
            address moved = _keeperList[last - 1];
            _keeperList[idx - 1] = moved;
            _keepers[moved].index = uint32(idx);
        }
        _keeperList.pop();
        k.index = 0;
    }

    /// @dev In-place ascending heapsort: O(n log n) with no recursion.
    function _sort(uint256[] memory a) private pure {
        uint256 n = a.length;
        if (n < 2) return;
        unchecked {
            for (uint256 start = n / 2; start > 0; --start) {
                _siftDown(a, start - 1, n);
            }
            for (uint256 end = n - 1; end > 0; --end) {
                (a[0], a[end]) = (a[end], a[0]);
                _siftDown(a, 0, end);
            }
        }
    }

    function _siftDown(uint256[] memory a, uint256 root, uint256 end) private pure {
        unchecked {
            while (true) {
                uint256 child = 2 * root + 1;
                if (child >= end) return;
                if (child + 1 < end && a[child] < a[child + 1]) child++;
                if (a[root] >= a[child]) return;
                (a[root], a[child]) = (a[child], a[root]);
                root = child;
            }
        }
    }
}
