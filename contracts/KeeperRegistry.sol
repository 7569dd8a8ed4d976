// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Address} from "@openzeppelin/contracts/utils/Address.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

/// @notice Where the quorum commitments of each epoch are kept: the TaskManager, which reads
///         them on every execution from its own storage rather than through a call to here.
interface IQuorumBook {
    /// @notice Records a new epoch's header and its quorums' hashes (registry only).
    function recordEpoch(uint64 epoch, uint48 startBlock, bytes16 seed, bytes32[] calldata quorumHashes)
        external;

    /// @notice The committed hash of a quorum's member words.
    function quorumHash(uint64 epoch, uint16 quorum) external view returns (bytes32);
}

/// @title KeeperRegistry
/// @notice Stake, keeper set, epochs and stake-weighted quorums of the keeper network.
/// @dev Quorums are committed by hash only; the member lists travel in `QuorumFormed` logs and in
///      `TaskManager.execute` calldata, which is far cheaper than reading members from storage.
///      The hashes (and the epoch header) are pushed to the TaskManager when an epoch starts, so
///      an execution reads them there without calling this contract.
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
        uint64 exitEpoch; // last epoch the keeper serves in
        uint64 unbondAt; // timestamp from which `withdraw` is allowed
        uint32 index; // position in `_keeperList` + 1 (0 = not listed)
        uint64 registeredBlock; // a rotation armed at or before this block leaves the keeper out
    }

    /// @dev The current epoch's header, packed in one slot: it is all an execution reads here
    ///      besides the quorum's hash. The seed is the top 128 bits of its keccak256.
    struct Current {
        uint64 epoch;
        uint48 startBlock;
        uint16 count;
        bytes16 seed;
    }

    /// @dev What only rotation and the keeper-set functions touch. A rotation is armed first
    ///      (the keeper set is frozen and a future block is named whose hash will be the seed),
    ///      then finished once that block exists: nobody can choose the seed or the set after
    ///      seeing the other.
    struct Timing {
        uint64 startTime;
        bool setChanged;
        uint48 armBlock; // 0: no rotation armed
        uint48 seedBlock;
        bool changedSinceArm; // a set change the armed rotation does not take in
    }

    /// @notice Blocks after a rotation during which reports of the previous epoch stay valid.
    uint64 public constant EPOCH_GRACE_BLOCKS = 20;
    /// @notice Most active keepers, so that `rotate` stays within a block's gas. When full, a
    ///         newcomer with more stake than the smallest active keeper takes its place.
    uint256 public constant MAX_KEEPERS = 256;
    /// @notice A member's weight in its quorum is its stake capped at this many `minStake`:
    ///         one large stake cannot outvote a quorum of small ones.
    uint256 public constant MAX_WEIGHT_MULTIPLE = 3;
    /// @notice Smallest `addStake`, as a fraction of `minStake` (1/10).
    uint256 public constant MIN_STAKE_INCREASE_DIVISOR = 10;
    /// @notice Blocks an epoch lasts at least before a keeper-set change may end it early.
    uint64 public constant MIN_EPOCH_BLOCKS = 30;
    /// @notice Blocks between arming a rotation and the block whose hash seeds it.
    uint64 public constant SEED_DELAY_BLOCKS = 2;
    /// @notice Share of a slashed stake paid to the reporter, in basis points.
    uint256 public constant SLASH_REWARD_BPS = 1000;
    /// @notice Longest endpoint URL accepted, in bytes.
    uint256 public constant MAX_ENDPOINT_LENGTH = 256;

    uint256 public immutable minStake;
    uint64 public immutable unbondingPeriod;
    uint64 public immutable epochLength;
    uint16 public immutable targetQuorumSize;
    /// @notice Blocks each ranked member leads a due round before the next one may: every
    ///         keeper must agree on it, so it lives here and not in each node's settings.
    uint64 public immutable turnBlocks;
    address private immutable _deployer;

    address public taskManager;
    /// @notice Slashed stake not paid out as rewards; it stays locked in this contract.
    uint256 public slashedFunds;

    Current private _current;
    Timing private _timing;
    /// @notice Keepers that are Active (the count MAX_KEEPERS bounds).
    uint256 public activeKeepers;
    mapping(address keeper => Keeper) private _keepers;
    mapping(address keeper => string) private _endpoints;
    address[] private _keeperList;
    mapping(uint64 epoch => bytes32) private _epochSeed;
    mapping(uint64 epoch => uint16) private _epochCount;

    event KeeperRegistered(address indexed keeper, uint256 stake, string endpoint);
    event StakeAdded(address indexed keeper, uint256 amount, uint256 total);
    event EndpointSet(address indexed keeper, string endpoint);
    event ExitRequested(address indexed keeper, uint64 epoch, uint64 unbondAt);
    event Withdrawn(address indexed keeper, uint256 amount);
    event Slashed(address indexed keeper, address indexed reporter, uint256 amount, uint256 reward);
    event KeeperEvicted(address indexed keeper, address indexed by, uint64 exitEpoch, uint64 unbondAt);
    event RotationArmed(uint64 indexed epoch, uint64 seedBlock);
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
    error RegistryFull(uint256 maxKeepers, uint256 stakeToEnter);
    error StakeIncreaseTooSmall(uint256 amount, uint256 min);
    error SeedNotReady(uint64 seedBlock);
    error RotationInProgress(uint64 seedBlock);
    error NoQuorums(uint64 epoch);
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
    error TaskManagerNotSet();

    /// @param minStake_ smallest stake that makes a keeper eligible for quorums
    /// @param unbondingPeriod_ seconds between `requestExit` and `withdraw`
    /// @param epochLength_ seconds after which `rotate` may start a new epoch in any case
    /// @param targetQuorumSize_ keepers per quorum the rotation aims at (quorums = K / target)
    /// @param turnBlocks_ blocks of each leader's turn before the next ranked member takes over
    constructor(
        uint256 minStake_,
        uint64 unbondingPeriod_,
        uint64 epochLength_,
        uint16 targetQuorumSize_,
        uint64 turnBlocks_
    ) {
        if (
            minStake_ == 0 || minStake_ > type(uint96).max / MAX_WEIGHT_MULTIPLE || unbondingPeriod_ == 0
                || epochLength_ == 0 || targetQuorumSize_ == 0 || turnBlocks_ == 0
        ) revert InvalidConfig();
        turnBlocks = turnBlocks_;
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

    /// @notice Registers `msg.sender` as a keeper with `msg.value` as stake. When MAX_KEEPERS
    ///         are active, the stake must exceed the smallest active one, whose keeper is evicted
    ///         (it exits as if it had asked to): filling the registry with minimum stakes cannot
    ///         lock operators out.
    /// @param endpoint http(s)://host:port of the node's peer API
    function register(string calldata endpoint) external payable {
        Keeper storage k = _keepers[msg.sender];
        if (k.status == Status.Slashed) revert KeeperWasSlashed(msg.sender);
        if (k.status != Status.None && k.status != Status.Withdrawn) revert AlreadyRegistered(msg.sender);
        if (msg.value < minStake) revert StakeBelowMinimum(msg.value, minStake);
        if (msg.value > type(uint96).max) revert StakeOverflow();
        _checkEndpoint(endpoint);
        if (activeKeepers >= MAX_KEEPERS) _evictSmallest(msg.value);

        _keeperList.push(msg.sender);
        k.stake = uint96(msg.value);
        k.status = Status.Active;
        k.exitEpoch = 0;
        k.unbondAt = 0;
        k.index = uint32(_keeperList.length);
        k.registeredBlock = uint64(block.number);
        ++activeKeepers;
        _endpoints[msg.sender] = endpoint;
        _noteSetChange();
        emit KeeperRegistered(msg.sender, msg.value, endpoint);
    }

    /// @notice Adds `msg.value` (at least minStake / 10) to the caller's stake; it counts from
    ///         the next epoch. Refused while a rotation is armed: the armed epoch's weights are
    ///         read when it starts, and by then its seed (so every quorum) is public.
    function addStake() external payable {
        Keeper storage k = _keepers[msg.sender];
        if (k.status != Status.Active) revert NotActive(msg.sender);
        if (_timing.armBlock != 0) revert RotationInProgress(_timing.seedBlock);
        if (msg.value == 0) revert ZeroValue();
        uint256 least = minStake / MIN_STAKE_INCREASE_DIVISOR;
        if (msg.value < least) revert StakeIncreaseTooSmall(msg.value, least);
        uint256 total = uint256(k.stake) + msg.value;
        if (total > type(uint96).max) revert StakeOverflow();
        k.stake = uint96(total);
        _noteSetChange();
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

    /// @notice Leaves the keeper set at the next epoch (the one after, if a rotation is armed);
    ///         unbonding starts now.
    function requestExit() external {
        Keeper storage k = _keepers[msg.sender];
        if (k.status != Status.Active) revert NotActive(msg.sender);
        _exit(msg.sender, k);
        _noteSetChange();
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
    /// @dev Only the TaskManager calls this, and only from `slashEquivocation` after it has
    ///      proven an equivocation: jobs call their targets through their own forwarders and
    ///      can never make the TaskManager call here.
    function slash(address keeper, address reporter) external onlyTaskManager nonReentrant {
        Keeper storage k = _keepers[keeper];
        if ((k.status != Status.Active && k.status != Status.Exiting) || k.stake == 0) {
            revert NothingToSlash(keeper);
        }
        uint256 amount = k.stake;
        uint256 reward = (amount * SLASH_REWARD_BPS) / 10_000;
        if (k.status == Status.Active) --activeKeepers;
        k.stake = 0;
        k.status = Status.Slashed;
        _unlist(keeper);
        slashedFunds += amount - reward;
        _noteSetChange();
        emit Slashed(keeper, reporter, amount, reward);
        if (reward != 0) Address.sendValue(payable(reporter), reward);
    }

    // ------------------------------------------------------------------ epochs

    /// @notice Rotation, in two calls. The first, allowed when `epochLength` has passed (or,
    ///         after a keeper-set change, once the epoch is MIN_EPOCH_BLOCKS old; before the first
    ///         epoch, once a keeper is active), arms it: the set is frozen and the block
    ///         SEED_DELAY_BLOCKS ahead is named as the seed block. The second, after that block,
    ///         seeds the epoch with its hash and re-forms the quorums from the frozen set. If the
    ///         seed block's hash is gone (256 blocks), the call arms again.
    function rotate() external {
        Current memory c = _current;
        Timing memory t = _timing;
        uint64 epoch = c.epoch + 1;
        if (t.armBlock == 0) {
            if (c.epoch == 0) {
                if (activeKeepers == 0) revert NoActiveKeepers();
            } else if (!_rotationDue(c, t, block.number)) {
                revert RotationNotDue(uint256(t.startTime) + epochLength);
            }
            _arm(epoch);
            return;
        }
        if (block.number <= t.seedBlock) revert SeedNotReady(t.seedBlock);
        address book = taskManager;
        if (book == address(0)) revert TaskManagerNotSet();
        bytes32 seedHash = blockhash(t.seedBlock);
        if (seedHash == bytes32(0)) {
            _arm(epoch);
            return;
        }
        bytes32 seed = bytes16(keccak256(abi.encode(seedHash, epoch)));

        (address[] memory members, uint256 k, bool late) = _frozenSet(t.armBlock, epoch);
        uint256 q = k / targetQuorumSize;
        if (q == 0 && k != 0) q = 1;
        if (q > type(uint16).max) q = type(uint16).max;

        _current = Current({epoch: epoch, startBlock: uint48(block.number), count: uint16(q), seed: bytes16(seed)});
        _timing = Timing({
            startTime: uint64(block.timestamp),
            setChanged: t.changedSinceArm || late,
            armBlock: 0,
            seedBlock: 0,
            changedSinceArm: false
        });
        _epochSeed[epoch] = seed;
        _epochCount[epoch] = uint16(q);
        emit EpochStarted(epoch, seed, uint16(q));
        bytes32[] memory hashes = new bytes32[](q);
        if (q == 0) {
            // nobody active: an empty epoch, so the last keepers can leave
            IQuorumBook(book).recordEpoch(epoch, uint48(block.number), bytes16(seed), hashes);
            return;
        }

        uint256[] memory order = new uint256[](k);
        for (uint256 i = 0; i < k; ++i) {
            order[i] = _sortKey(seed, members[i]);
        }
        _sort(order);
        uint256 cap = minStake * MAX_WEIGHT_MULTIPLE;
        for (uint256 j = 0; j < q; ++j) {
            uint256 size = k / q + (j < k % q ? 1 : 0);
            uint256[] memory words = new uint256[](size);
            for (uint256 m = 0; m < size; ++m) {
                address a = address(uint160(order[j + m * q]));
                uint256 weight = _keepers[a].stake;
                if (weight > cap) weight = cap;
                words[m] = (uint256(uint160(a)) << 96) | weight;
            }
            _sort(words);
            bytes32[] memory quorumWords;
            assembly ("memory-safe") {
                quorumWords := words
            }
            hashes[j] = keccak256(abi.encodePacked(quorumWords));
            emit QuorumFormed(epoch, uint16(j), quorumWords);
        }
        IQuorumBook(book).recordEpoch(epoch, uint48(block.number), bytes16(seed), hashes);
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

    /// @notice Whether `rotate()` would succeed (arm or finish a rotation) in the next block.
    function canRotate() external view returns (bool) {
        Current memory c = _current;
        Timing memory t = _timing;
        if (t.armBlock != 0) return block.number + 1 > t.seedBlock;
        if (c.epoch == 0) return activeKeepers != 0;
        return _rotationDue(c, t, block.number + 1);
    }

    /// @notice The armed rotation, if any: the block it was armed in and its seed block.
    function armedRotation() external view returns (uint64 armBlock, uint64 seedBlock) {
        Timing memory t = _timing;
        return (t.armBlock, t.seedBlock);
    }

    /// @notice The epoch's seed: the top 128 bits of keccak256(abi.encode(blockhash(seedBlock),
    ///         epoch)), left-aligned in a bytes32, where the seed block was named when the
    ///         rotation was armed. Member order and quorumOf hash this bytes32; 128 bits keep the
    ///         current epoch's header in one slot.
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
        return IQuorumBook(taskManager).quorumHash(epoch, quorum);
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
        if (count == 0) revert NoQuorums(epoch);
        quorum = uint16(uint256(keccak256(abi.encode(seed, jobId))) % count);
        hash = IQuorumBook(taskManager).quorumHash(epoch, quorum);
    }

    function keeperInfo(address keeper)
        external
        view
        returns (uint256 stake, Status status, uint64 exitEpoch, uint64 unbondAt, string memory endpoint)
    {
        Keeper memory k = _keepers[keeper];
        return (k.stake, k.status, k.exitEpoch, k.unbondAt, _endpoints[keeper]);
    }

    /// @notice The weight a stake gives in a quorum: the stake, capped at MAX_WEIGHT_MULTIPLE * minStake.
    function weightOf(uint256 stake) external view returns (uint256) {
        uint256 cap = minStake * MAX_WEIGHT_MULTIPLE;
        return stake > cap ? cap : stake;
    }

    function endpointOf(address keeper) external view returns (string memory) {
        return _endpoints[keeper];
    }

    /// @notice The keepers a rotation looks at: the active ones, and exiting ones that still
    ///         serve in the armed rotation's epoch.
    function keepers() external view returns (address[] memory) {
        return _keeperList;
    }

    // ------------------------------------------------------------------ internals

    function _checkEndpoint(string calldata endpoint) private pure {
        uint256 n = bytes(endpoint).length;
        if (n == 0 || n > MAX_ENDPOINT_LENGTH) revert InvalidEndpoint();
    }

    /// @dev The set frozen when the rotation to `epoch` was armed: active keepers registered
    ///      before `armBlock`, and exiting ones whose last epoch is `epoch`. Exiting keepers whose
    ///      service is over leave the list (their record stays for `withdraw`). `late` is true
    ///      when an active keeper was left out for registering after the arm.
    function _frozenSet(uint256 armBlock, uint64 epoch)
        private
        returns (address[] memory members, uint256 k, bool late)
    {
        uint256 n = _keeperList.length;
        members = new address[](n);
        for (uint256 i = n; i > 0; --i) {
            address a = _keeperList[i - 1];
            Keeper storage kp = _keepers[a];
            if (kp.status == Status.Active) {
                if (kp.registeredBlock >= armBlock) late = true;
                else members[k++] = a;
            } else if (kp.status == Status.Exiting && kp.exitEpoch >= epoch) {
                members[k++] = a;
            } else {
                _unlist(a);
            }
        }
    }

    /// @dev Whether a rotation may be armed at block `number`.
    function _rotationDue(Current memory c, Timing memory t, uint256 number) private view returns (bool) {
        if (block.timestamp >= uint256(t.startTime) + epochLength) return true;
        return t.setChanged && number >= uint256(c.startBlock) + MIN_EPOCH_BLOCKS;
    }

    function _arm(uint64 epoch) private {
        uint64 seedBlock = uint64(block.number) + SEED_DELAY_BLOCKS;
        _timing.armBlock = uint48(block.number);
        _timing.seedBlock = uint48(seedBlock);
        emit RotationArmed(epoch, seedBlock);
    }

    /// @dev A set change ends the epoch early (after MIN_EPOCH_BLOCKS); one made while a rotation
    ///      is armed counts for the rotation after it.
    function _noteSetChange() private {
        if (_timing.armBlock != 0) _timing.changedSinceArm = true;
        else _timing.setChanged = true;
    }

    /// @dev Starts `keeper`'s exit: its last epoch is the current one, or the armed one (whose
    ///      frozen set includes it). A keeper out of every future set leaves the list at once.
    function _exit(address keeper, Keeper storage k) private {
        bool armed = _timing.armBlock != 0;
        k.status = Status.Exiting;
        k.exitEpoch = _current.epoch + (armed ? 1 : 0);
        k.unbondAt = uint64(block.timestamp) + unbondingPeriod;
        --activeKeepers;
        if (!armed) _unlist(keeper);
    }

    /// @dev The registry is full: `stake` must beat the smallest active stake, whose keeper exits.
    function _evictSmallest(uint256 stake) private {
        uint256 n = _keeperList.length;
        address smallest;
        uint256 least = type(uint256).max;
        for (uint256 i = 0; i < n; ++i) {
            address a = _keeperList[i];
            Keeper storage kp = _keepers[a];
            if (kp.status == Status.Active && kp.stake < least) (smallest, least) = (a, kp.stake);
        }
        if (stake <= least) revert RegistryFull(MAX_KEEPERS, least + 1);
        Keeper storage evicted = _keepers[smallest];
        _exit(smallest, evicted);
        emit KeeperEvicted(smallest, msg.sender, evicted.exitEpoch, evicted.unbondAt);
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
