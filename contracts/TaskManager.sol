// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Address} from "@openzeppelin/contracts/utils/Address.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {IForwarderDeployer, JobForwarder} from "./JobForwarder.sol";
import {IQuorumBook, KeeperRegistry} from "./KeeperRegistry.sol";

/// @title TaskManager
/// @notice Jobs (registration, funding, validation), threshold-signed execution and billing.
/// @dev Every execution must raise the job's monotonic cursor, which makes execution exactly-once
///      for every trigger kind. Job state that every execution touches is packed in one slot.
///      Each job calls its target through its own JobForwarder, never from this contract, so a
///      target can tell its own job's calls from anyone else's and no job borrows the
///      TaskManager's address (which the registry trusts to slash).
contract TaskManager is EIP712, ReentrancyGuardTransient, IForwarderDeployer, IQuorumBook {
    enum TriggerKind {
        Time,
        Cron,
        Event,
        Condition
    }

    enum JobStatus {
        None,
        Active,
        Paused,
        Cancelled
    }

    /// @notice What a job owner registers. `trigger` is abi-encoded per kind:
    ///         Time `(uint64 interval)`, Cron `(string expr)`,
    ///         Event `(address emitter, bytes32[4] topics, uint16 confirmations)`,
    ///         Condition `(address resolver, bytes resolverCalldata, uint8 mode, uint64 minInterval)`.
    ///         `maxGasPrice` (wei, 0 = none) is the most the job pays per gas: executions are
    ///         billed at no more, and keepers wait while the chain's price is above it.
    struct JobSpec {
        address target;
        bytes callData;
        TriggerKind kind;
        bytes trigger;
        uint32 gasLimit;
        uint16 thresholdBps;
        uint64 startTime;
        uint64 endTime;
        uint32 maxExecutions;
        uint64 maxGasPrice;
    }

    /// @notice What every item of a batch shares: the EIP-712 `Batch` a quorum signs is this
    ///         header and its items' `SignedItem` hashes.
    struct BatchHeader {
        uint64 epoch;
        uint16 quorum;
        uint64 checkBlock;
        bytes32 checkBlockHash;
        address executor;
        uint64 deadline;
    }

    /// @notice One round of one job in a batch, as `execute` carries it. `payload` is empty
    ///         for a Time, Cron or Event job (its call lives in its forwarder's code) and the
    ///         resolver's result for a Condition job.
    struct Item {
        uint256 jobId;
        uint64 round;
        uint256 cursor;
        bytes payload;
    }

    /// @notice One item as signed (EIP-712 `Item`): the payload by its hash.
    struct SignedItem {
        uint256 jobId;
        uint64 round;
        uint256 cursor;
        bytes32 payloadHash;
    }

    /// @notice One signed item with the batch it was signed in: half a proof of equivocation.
    struct EquivocationProof {
        BatchHeader header;
        bytes32[] itemHashes;
        uint256 index; // of `item` in `itemHashes`
        SignedItem item;
        bytes signature;
    }

    /// @dev Slot read and written by every execution.
    struct JobState {
        uint88 balance;
        uint64 lastCursor;
        uint32 round;
        JobStatus status;
        TriggerKind kind;
        uint16 thresholdBps;
        uint24 gasLimit;
        bool limited; // maxExecutions, endTime or maxGasPrice set: only then is `limits` read
        bool failing; // the last execution failed: `limits.failures` counts how many in a row
    }

    /// @dev Slot read by every execution.
    struct JobConfig {
        address forwarder;
        uint40 startTime;
        uint48 interval; // Time: seconds; Event: confirmations; Condition: minInterval in blocks
        uint8 mode; // Condition: 0 resolver calldata, 1 performUpkeep(data)
    }

    /// @dev Slot read only by jobs with limits, and by paused or cancelled ones.
    struct JobLimits {
        uint32 maxExecutions;
        uint40 endTime;
        uint64 maxGasPrice;
        uint64 haltBlock; // block of the last pause or cancel: reports checked before it still count
        uint8 failures; // failed executions in a row
        uint8 maxFailuresSet; // 0: DEFAULT_MAX_FAILURES; NEVER_PAUSE: never; else the number
    }

    struct Job {
        JobState state;
        JobConfig config;
        JobLimits limits;
        bytes32 callDataHash; // getJob's view only: the call lives in the forwarder's code
        address owner;
        address target; // read by views only: executions reach it through the forwarder
    }

    /// @dev An epoch as `execute` needs it, in one slot; the registry pushes it when the epoch
    ///      starts. The seed is KeeperRegistry.epochSeed's top 128 bits.
    struct EpochHeader {
        uint64 epoch;
        uint48 startBlock;
        uint16 count;
        bytes16 seed;
    }

    /// @notice Everything about a job in one value, for clients.
    struct JobView {
        address owner;
        JobStatus status;
        TriggerKind kind;
        address target;
        uint32 gasLimit;
        uint16 thresholdBps;
        uint64 startTime;
        uint64 endTime;
        uint32 maxExecutions;
        uint64 interval;
        uint8 mode;
        uint256 balance;
        uint64 round;
        uint64 lastCursor;
        bytes32 callDataHash;
        address forwarder;
        uint64 maxGasPrice;
        uint64 haltBlock;
        address pendingOwner;
        uint8 failures;
        uint8 maxFailures;
    }

    bytes32 private constant ITEM_TYPEHASH =
        keccak256("Item(uint256 jobId,uint64 round,uint256 cursor,bytes32 payloadHash)");
    bytes32 private constant BATCH_TYPEHASH = keccak256(
        "Batch(uint64 epoch,uint16 quorum,uint64 checkBlock,bytes32 checkBlockHash,address executor,"
        "uint64 deadline,Item[] items)Item(uint256 jobId,uint64 round,uint256 cursor,bytes32 payloadHash)"
    );
    /// @notice The most items one `execute` carries.
    uint256 public constant MAX_BATCH_ITEMS = 64;
    /// @dev Where `items` starts in canonical calldata: the selector, 10 head words, its length.
    uint256 private constant ITEMS_OFFSET = 4 + 11 * 32;
    // Bit positions of JobState's and JobConfig's fields in their slots (the compiler packs a
    // struct's members from the low-order end in declaration order): `execute` reads and
    // writes each slot as one word instead of copying the whole struct.
    uint256 private constant STATE_BALANCE = (1 << 88) - 1; // mask of balance, bits 0-87
    uint256 private constant STATE_CURSOR = 88; // lastCursor, 64 bits
    uint256 private constant STATE_ROUND = 152; // round, 32 bits
    uint256 private constant STATE_STATUS = 184;
    uint256 private constant STATE_KIND = 192;
    uint256 private constant STATE_THRESHOLD = 200; // thresholdBps, 16 bits
    uint256 private constant STATE_GAS_LIMIT = 216; // gasLimit, 24 bits
    uint256 private constant STATE_LIMITED = 240;
    uint256 private constant STATE_FAILING = 248;
    uint256 private constant STATE_CURSOR_AND_ROUND = ((1 << 96) - 1) << 88;
    uint256 private constant CONFIG_START_TIME = 160; // startTime, 40 bits (forwarder: bits 0-159)
    uint256 private constant CONFIG_INTERVAL = 200; // interval, 48 bits
    uint256 private constant CONFIG_MODE = 248;
    // An executed item's outcome, kept in one memory word from the loop to its settlement: its
    // own gas (bits 0-63), the forwarder call's gas, the job's maxGasPrice and success.
    uint256 private constant OUTCOME_GAS_USED = 64;
    uint256 private constant OUTCOME_MAX_GAS_PRICE = 128;
    uint256 private constant OUTCOME_SUCCESS = 192;
    uint32 private constant MIN_GAS_LIMIT = 10_000;
    uint32 private constant MAX_GAS_LIMIT = 5_000_000;
    uint64 private constant MIN_INTERVAL = 10; // seconds, Time jobs
    uint16 private constant MAX_CONFIRMATIONS = 64; // Event jobs
    uint256 private constant MAX_CALLDATA = 4096; // bytes of a job's callData or resolver calldata
    uint256 private constant MAX_CRON_LENGTH = 128;
    /// @notice Blocks a report's checkBlock may lag. Also the delay after `cancel` before the
    ///         balance can be withdrawn: every report signed before the cancel has expired by then.
    uint64 public constant MAX_CHECK_AGE = 128;
    /// @notice Cron fire times are whole minutes: no quorum can fire a Cron job more often.
    uint64 private constant CRON_GRID = 60;
    uint256 private constant MAX_MEMBERS = 256; // one bit each in signerBitmap
    /// @notice Blocks after a rotation during which reports of the previous epoch stay valid
    ///         (KeeperRegistry.EPOCH_GRACE_BLOCKS).
    uint64 public constant EPOCH_GRACE_BLOCKS = 20;
    /// @notice Gas reserved for the work after the target returns (payment, event).
    uint256 private constant POST_CALL_GAS = 30_000;
    /// @notice Gas billed on top of what `execute` measures: the transaction base and calldata.
    uint256 private constant BILLING_BASE_GAS = 21_000;
    /// @notice Gas of a batch's work after its shared part is measured (the executor's credit
    ///         write, warm credit, and the settlement loop's own opcodes).
    uint256 private constant POST_PAYMENT_GAS = 5_000;
    /// @notice Gas billed to an executed item beyond what is measured around it: its settlement
    ///         after the loop (its one balance write, `JobExecuted`, the funding check; measured
    ///         with benchmarks/gas.py's batches: a batch of n is billed within ~130 + 10n gas of
    ///         its transaction's, calldata at 16 a byte).
    uint256 private constant ITEM_SETTLE_GAS = 4_050;
    /// @notice Extra gas when the executor's credit slot goes from zero to non-zero.
    uint256 private constant FRESH_CREDIT_GAS = 17_100;
    /// @notice Worst-case gas of `execute` beyond the target's, used for the funding check: a
    ///         16-member quorum's 11 signatures cost about 120,000 (docs/benchmarks.md). A larger
    ///         quorum's executor may be paid less than its gas on a job's last execution, never
    ///         more than the balance.
    uint256 public constant MAX_EXECUTION_OVERHEAD_GAS = 150_000;
    /// @notice Gas the forwarder may spend besides the target's (cold target, copy, call).
    uint256 private constant FORWARDER_GAS = 5_000;
    /// @notice Failed executions in a row after which a new job pauses itself (`setMaxFailures`).
    uint8 public constant DEFAULT_MAX_FAILURES = 3;
    uint8 private constant NEVER_PAUSE = type(uint8).max;
    /// @notice Bytes of a failed target call's revert data kept in `JobFailed`.
    uint256 private constant MAX_REASON_BYTES = 256;
    uint256 private constant PERFORM_UPKEEP_SELECTOR_WORD = 0x4585e33b; // performUpkeep(bytes)

    KeeperRegistry public immutable registry;
    /// @notice Highest gas price an execution is billed at.
    uint256 public immutable gasPriceCap;
    /// @notice Highest priority fee (tip) over the block's base fee an execution is billed at.
    uint256 public immutable maxPriorityFee;
    /// @notice Flat fee per execution on top of gas, in wei.
    uint256 public immutable premium;
    /// @notice keccak256 of JobForwarder's creation code: with the salt, it fixes a forwarder's address.
    bytes32 public immutable forwarderCodeHash;

    uint256 public nextJobId = 1;
    mapping(uint256 jobId => Job) private _jobs;
    mapping(address keeper => uint256) public earnings;
    /// @notice The job a forwarder serves (0: not a forwarder).
    mapping(address forwarder => uint256) public jobOfForwarder;
    /// @notice How many jobs an account has created: the salt of its next job's forwarder.
    mapping(address owner => uint256) public forwarderNonce;
    mapping(uint256 jobId => address) private _pendingOwner;
    EpochHeader private _epochNow;
    EpochHeader private _epochBefore; // for reports of the previous epoch, within the grace period
    mapping(uint64 epoch => mapping(uint16 quorum => bytes32)) private _quorumHash;
    /// @dev Transient slots of the call of the forwarder being deployed, for its constructor
    ///      (`forwarderCall`): the target, the callData's length, then its words; all zero
    ///      outside `_deployForwarder`. Solidity has `transient` for value types only.
    ///      keccak256("keeper.TaskManager.forwarderCall"), clear of the compiler's slots.
    uint256 private constant FORWARDER_CALL_SLOT = 0x3021bcaa007eeaee8145518e9fc4c37a9f725bf53a09b64a81a66c0dd5ac2fc0;

    event JobCreated(
        uint256 indexed jobId, address indexed owner, TriggerKind kind, JobSpec spec, uint256 deposit, address forwarder
    );
    event JobFunded(uint256 indexed jobId, address indexed from, uint256 amount, uint256 balance);
    event JobPaused(uint256 indexed jobId);
    event JobResumed(uint256 indexed jobId);
    /// @param unlockBlock first block at which `withdrawFunds` pays the balance out
    event JobCancelled(uint256 indexed jobId, uint64 unlockBlock);
    event JobFundsWithdrawn(uint256 indexed jobId, address indexed to, uint256 amount);
    event JobOwnershipTransferRequested(uint256 indexed jobId, address indexed from, address indexed to);
    event JobOwnershipTransferred(uint256 indexed jobId, address indexed from, address indexed to);
    event JobExecuted(
        uint256 indexed jobId,
        uint64 round,
        uint256 cursor,
        address indexed executor,
        bool success,
        uint256 gasUsed,
        uint256 payment
    );
    /// @notice A target call failed; `reason` is its revert data (at most MAX_REASON_BYTES,
    ///         empty when it ran out of gas or reverted without data).
    event JobFailed(uint256 indexed jobId, uint64 round, bytes reason);
    /// @notice The job failed `failures` times in a row and paused itself (JobPaused is emitted
    ///         too); the owner resumes it with `resume`.
    event JobAutoPaused(uint256 indexed jobId, uint8 failures);
    /// @notice An execution left the balance below what one more execution needs at this
    ///         block's price: the job stops until funded.
    event JobUnderfunded(uint256 indexed jobId, uint256 balance, uint256 required);
    event MaxFailuresSet(uint256 indexed jobId, uint8 maxFailures);
    event EarningsWithdrawn(address indexed keeper, uint256 amount);
    /// @notice An item of a batch was not executed; `reason` is the selector of the named error
    ///         that says why (e.g. `WrongRound`: the round was executed already). Nothing of
    ///         the job changed, and the item was billed to no one.
    event JobSkipped(uint256 indexed jobId, uint64 round, bytes4 reason);
    event EquivocationProven(address indexed keeper, address indexed reporter, uint256 indexed jobId, uint64 round);

    // createJob validation
    error TargetNotContract(address target);
    error ForbiddenTarget(address target);
    error ForbiddenResolver(address resolver);
    error GasLimitOutOfRange(uint32 gasLimit, uint32 min, uint32 max);
    error ThresholdOutOfRange(uint16 thresholdBps);
    error InvalidTimeWindow(uint64 startTime, uint64 endTime);
    error IntervalTooShort(uint64 interval, uint64 min);
    error ZeroEmitter();
    error MalformedTrigger(TriggerKind kind);
    error ConfirmationsTooHigh(uint16 confirmations, uint16 max);
    error ResolverNotContract(address resolver);
    error CallDataTooLong(uint256 length, uint256 max);
    error DepositTooLow(uint256 deposit, uint256 required);
    error BalanceOverflow();
    // job management
    error UnknownJob(uint256 jobId);
    error NotJobOwner(address caller, address owner);
    error JobIsPaused(uint256 jobId);
    error JobIsCancelled(uint256 jobId);
    error JobNotPaused(uint256 jobId);
    error JobNotCancelled(uint256 jobId);
    error FundsLocked(uint256 jobId, uint64 unlockBlock);
    error NotPendingOwner(address caller, address pendingOwner);
    error ZeroValue();
    error NothingToWithdraw();
    error MaxFailuresOutOfRange(uint8 maxFailures);
    // execute
    error NonCanonicalCalldata(uint256 length, uint256 canonicalLength);
    error PayloadTooLong(uint256 length, uint256 max);
    error NotExecutor(address sender, address executor);
    error ReportExpired(uint64 deadline, uint256 blockNumber);
    error WrongRound(uint64 expected, uint64 got);
    error MaxExecutionsReached(uint32 maxExecutions);
    error JobExpired(uint64 endTime);
    error JobNotStarted(uint64 startTime);
    error InsufficientBalance(uint256 balance, uint256 required);
    error CheckBlockInFuture(uint64 checkBlock, uint256 blockNumber);
    error StaleCheckBlock(uint64 checkBlock, uint256 blockNumber);
    error CheckBlockHashMismatch(uint64 checkBlock);
    error PayloadMismatch();
    error CursorOutOfRange(uint256 cursor);
    error CursorNotRaised(uint256 cursor, uint64 lastCursor);
    error CursorOffGrid(uint256 cursor);
    error CursorBeforeStart(uint256 cursor, uint64 startTime);
    error CursorInFuture(uint256 cursor, uint256 timestamp);
    error CursorMismatch(uint256 cursor, uint64 checkBlock);
    error LogNotConfirmed(uint256 logBlock, uint64 checkBlock, uint64 confirmations);
    error ConditionTooSoon(uint256 cursor, uint64 lastCursor, uint64 minInterval);
    error EpochNotActive(uint64 epoch, uint64 currentEpoch);
    error NoQuorums(uint64 epoch);
    error NotRegistry(address caller);
    error JobNotInQuorum(uint256 jobId, uint16 quorum);
    error QuorumMismatch();
    error TooManyMembers(uint256 count);
    error BitmapOutOfRange();
    error SignatureCountMismatch(uint256 expected, uint256 got);
    error InvalidSignature(uint256 index);
    error MalleableSignature(uint256 index);
    error SignerNotMember(uint256 index, address signer);
    error DuplicateSignature(uint256 index, address signer);
    error SignatureOrderMismatch(uint256 index, address signer);
    error TooFewSigners(uint256 signers, uint256 members);
    error InsufficientStake(uint256 signedStake, uint256 totalStake, uint16 thresholdBps);
    error InsufficientGasForTarget(uint256 available, uint256 required);
    error EmptyBatch();
    error TooManyItems(uint256 count, uint256 max);
    error NothingExecuted();
    // equivocation
    error NotEquivocation();
    error DifferentSigners(address a, address b);
    error ItemHashMismatch(uint256 index);

    /// @param registry_ the KeeperRegistry whose quorums sign reports
    /// @param gasPriceCap_ highest gas price (wei) an execution is billed at
    /// @param maxPriorityFee_ highest tip over the base fee (wei per gas) an execution is billed at
    /// @param premium_ flat fee per execution (wei)
    constructor(KeeperRegistry registry_, uint256 gasPriceCap_, uint256 maxPriorityFee_, uint256 premium_)
        EIP712("KeeperTaskManager", "1")
    {
        registry = registry_;
        gasPriceCap = gasPriceCap_;
        maxPriorityFee = maxPriorityFee_;
        premium = premium_;
        forwarderCodeHash = keccak256(type(JobForwarder).creationCode);
    }

    // ------------------------------------------------------------------ job owners

    /// @notice Registers a job; `msg.value` funds it and must cover one worst-case execution.
    ///         The job calls its target through a forwarder of its own, deployed here at the
    ///         address `nextForwarder(msg.sender)` showed before this call. A Time, Cron or
    ///         Event job's callData is kept in its forwarder's code (its executions carry an
    ///         empty payload and read no storage for it), so the forwarder's code deposit
    ///         costs 200 gas more per byte of callData, paid once here.
    /// @return jobId the new job's id
    function createJob(JobSpec calldata spec) external payable returns (uint256 jobId) {
        if (spec.target.code.length == 0) revert TargetNotContract(spec.target);
        if (_isPrivileged(spec.target)) revert ForbiddenTarget(spec.target);
        if (spec.gasLimit < MIN_GAS_LIMIT || spec.gasLimit > MAX_GAS_LIMIT) {
            revert GasLimitOutOfRange(spec.gasLimit, MIN_GAS_LIMIT, MAX_GAS_LIMIT);
        }
        if (spec.thresholdBps <= 5000 || spec.thresholdBps > 10_000) revert ThresholdOutOfRange(spec.thresholdBps);
        uint64 start = spec.startTime == 0 ? uint64(block.timestamp) : spec.startTime;
        if (spec.endTime != 0 && (spec.endTime <= start || spec.endTime <= block.timestamp)) {
            revert InvalidTimeWindow(start, spec.endTime);
        }
        if (spec.endTime > type(uint40).max || start > type(uint40).max) revert InvalidTimeWindow(start, spec.endTime);
        if (spec.callData.length > MAX_CALLDATA) revert CallDataTooLong(spec.callData.length, MAX_CALLDATA);
        (uint48 interval, uint8 mode) = _validateTrigger(spec.kind, spec.trigger);
        uint256 required = _minBalance(spec.gasLimit, spec.maxGasPrice);
        if (msg.value < required) revert DepositTooLow(msg.value, required);
        if (msg.value > type(uint88).max) revert BalanceOverflow();

        jobId = nextJobId++;
        address forwarder =
            _deployForwarder(jobId, spec.target, spec.kind == TriggerKind.Condition ? spec.callData[0:0] : spec.callData);
        Job storage job = _jobs[jobId];
        uint64 lastCursor = 0;
        // Logs of the creation block or older never fire.
        if (spec.kind == TriggerKind.Event) lastCursor = uint64((block.number << 32) | 0xffffffff);
        bool limited = spec.maxExecutions != 0 || spec.endTime != 0 || spec.maxGasPrice != 0;
        job.state = JobState({
            balance: uint88(msg.value),
            lastCursor: lastCursor,
            round: 0,
            status: JobStatus.Active,
            kind: spec.kind,
            thresholdBps: spec.thresholdBps,
            gasLimit: uint24(spec.gasLimit),
            limited: limited,
            failing: false
        });
        job.config = JobConfig({forwarder: forwarder, startTime: uint40(start), interval: interval, mode: mode});
        if (limited) {
            job.limits = JobLimits({
                maxExecutions: spec.maxExecutions,
                endTime: uint40(spec.endTime),
                maxGasPrice: spec.maxGasPrice,
                haltBlock: 0,
                failures: 0,
                maxFailuresSet: 0
            });
        }
        if (spec.kind != TriggerKind.Condition) job.callDataHash = keccak256(spec.callData);
        job.owner = msg.sender;
        job.target = spec.target;
        emit JobCreated(jobId, msg.sender, spec.kind, spec, msg.value, forwarder);
    }

    /// @notice Adds `msg.value` to a job's balance. Anyone may fund a job that is not cancelled,
    ///         its own target included, while that target runs.
    function fund(uint256 jobId) external payable {
        JobState storage s = _jobs[jobId].state;
        if (s.status == JobStatus.None) revert UnknownJob(jobId);
        if (s.status == JobStatus.Cancelled) revert JobIsCancelled(jobId);
        if (msg.value == 0) revert ZeroValue();
        uint256 balance = uint256(s.balance) + msg.value;
        if (balance > type(uint88).max) revert BalanceOverflow();
        s.balance = uint88(balance);
        emit JobFunded(jobId, msg.sender, msg.value, balance);
    }

    /// @notice Stops new rounds until `resume`. Owner only. Reports whose check block lies before
    ///         this block stay executable (until they expire): keepers who signed them before the
    ///         pause could see it are never made to pay for a revert.
    function pause(uint256 jobId) external {
        JobState storage s = _ownedJob(jobId);
        if (s.status == JobStatus.Paused) revert JobIsPaused(jobId);
        if (s.status == JobStatus.Cancelled) revert JobIsCancelled(jobId);
        s.status = JobStatus.Paused;
        _jobs[jobId].limits.haltBlock = uint64(block.number);
        emit JobPaused(jobId);
    }

    /// @notice Lets a paused job execute again, its count of failures in a row back at zero.
    ///         Owner only.
    function resume(uint256 jobId) external {
        JobState storage s = _ownedJob(jobId);
        if (s.status != JobStatus.Paused) revert JobNotPaused(jobId);
        s.status = JobStatus.Active;
        s.failing = false;
        _jobs[jobId].limits.failures = 0;
        emit JobResumed(jobId);
    }

    /// @notice Failed executions in a row after which the job pauses itself (0: never; at
    ///         most 254). Owner only. A new job pauses after DEFAULT_MAX_FAILURES.
    function setMaxFailures(uint256 jobId, uint8 maxFailures) external {
        JobState storage s = _ownedJob(jobId);
        if (s.status == JobStatus.Cancelled) revert JobIsCancelled(jobId);
        if (maxFailures == NEVER_PAUSE) revert MaxFailuresOutOfRange(maxFailures);
        _jobs[jobId].limits.maxFailuresSet = maxFailures == 0 ? NEVER_PAUSE : maxFailures;
        emit MaxFailuresSet(jobId, maxFailures);
    }

    /// @notice Ends a job for good. Owner only. Reports checked before this block stay executable
    ///         until they expire, so the balance is paid out by `withdrawFunds` from
    ///         `MAX_CHECK_AGE` blocks later (Chainlink's cancellation delay, for the same reason).
    function cancel(uint256 jobId) external {
        JobState storage s = _ownedJob(jobId);
        if (s.status == JobStatus.Cancelled) revert JobIsCancelled(jobId);
        s.status = JobStatus.Cancelled;
        _jobs[jobId].limits.haltBlock = uint64(block.number);
        emit JobCancelled(jobId, uint64(block.number) + MAX_CHECK_AGE);
    }

    /// @notice Pays a cancelled job's balance to its owner once the cancellation delay is over.
    function withdrawFunds(uint256 jobId) external nonReentrant {
        JobState storage s = _ownedJob(jobId);
        if (s.status != JobStatus.Cancelled) revert JobNotCancelled(jobId);
        uint64 unlockBlock = _jobs[jobId].limits.haltBlock + MAX_CHECK_AGE;
        if (block.number < unlockBlock) revert FundsLocked(jobId, unlockBlock);
        uint256 amount = s.balance;
        if (amount == 0) revert NothingToWithdraw();
        s.balance = 0;
        emit JobFundsWithdrawn(jobId, msg.sender, amount);
        Address.sendValue(payable(msg.sender), amount);
    }

    /// @notice First step of handing a job to `newOwner` (the zero address withdraws an offer).
    ///         Owner only; nothing changes until `newOwner` accepts.
    function transferJobOwnership(uint256 jobId, address newOwner) external {
        _ownedJob(jobId);
        _pendingOwner[jobId] = newOwner;
        emit JobOwnershipTransferRequested(jobId, msg.sender, newOwner);
    }

    /// @notice Second step: the proposed owner takes the job over.
    function acceptJobOwnership(uint256 jobId) external {
        Job storage job = _jobs[jobId];
        if (job.state.status == JobStatus.None) revert UnknownJob(jobId);
        address pending = _pendingOwner[jobId];
        if (msg.sender != pending || pending == address(0)) revert NotPendingOwner(msg.sender, pending);
        address previous = job.owner;
        job.owner = msg.sender;
        delete _pendingOwner[jobId];
        emit JobOwnershipTransferred(jobId, previous, msg.sender);
    }

    // ------------------------------------------------------------------ epochs

    /// @inheritdoc IQuorumBook
    function recordEpoch(uint64 epoch, uint48 startBlock, bytes16 seed, bytes32[] calldata quorumHashes)
        external
    {
        if (msg.sender != address(registry)) revert NotRegistry(msg.sender);
        _epochBefore = _epochNow;
        _epochNow = EpochHeader({epoch: epoch, startBlock: startBlock, count: uint16(quorumHashes.length), seed: seed});
        for (uint256 q = 0; q < quorumHashes.length; ++q) {
            _quorumHash[epoch][uint16(q)] = quorumHashes[q];
        }
    }

    /// @inheritdoc IQuorumBook
    function quorumHash(uint64 epoch, uint16 quorum) external view returns (bytes32) {
        return _quorumHash[epoch][quorum];
    }

    /// @inheritdoc IForwarderDeployer
    function forwarderCall() external view returns (address target, bytes memory callData) {
        assembly ("memory-safe") {
            target := tload(FORWARDER_CALL_SLOT)
            let n := tload(add(FORWARDER_CALL_SLOT, 1))
            callData := mload(0x40)
            mstore(callData, n)
            let words := shr(5, add(n, 31))
            for { let i := 0 } lt(i, words) { i := add(i, 1) } {
                mstore(add(callData, shl(5, add(i, 1))), tload(add(FORWARDER_CALL_SLOT, add(i, 2))))
            }
            mstore(0x40, add(callData, shl(5, add(words, 1))))
        }
    }

    // ------------------------------------------------------------------ keepers

    /// @notice Executes a batch of rounds of one quorum's jobs, proven by the threshold
    ///         signatures of that quorum over the header and every item. Items run in order,
    ///         each on the state the earlier ones left; an item that is no longer valid (its
    ///         round closed, its job paused or out of funds, a cursor rule) is skipped with
    ///         `JobSkipped` and changes nothing. Each executed item pays its own gas and
    ///         calldata plus an even share of the batch's shared gas, and the premium.
    /// @param header the batch's shared fields; `msg.sender` must be `header.executor`
    /// @param items the rounds to execute, at most MAX_BATCH_ITEMS, all of `header.quorum`'s jobs
    /// @param members the quorum's member words (`address << 96 | weight`), sorted, as committed
    /// @param signerBitmap bit i set when members[i] signed
    /// @param signatures 65-byte signatures, one per set bit, in member order
    /// @return executed bit i set when items[i] ran (its target succeeded or failed)
    function execute(
        BatchHeader calldata header,
        Item[] calldata items,
        bytes32[] calldata members,
        uint256 signerBitmap,
        bytes calldata signatures
    ) external nonReentrant returns (uint256 executed) {
        uint256 startGas = gasleft();
        uint256 n = items.length;
        if (n == 0) revert EmptyBatch();
        if (n > MAX_BATCH_ITEMS) revert TooManyItems(n, MAX_BATCH_ITEMS);
        _checkHeader(header);
        (uint256 hashes, uint256 itemBytes, bytes32 itemsHash, uint256 offsetsOff) = _hashItems(header, items);
        // Calldata is billed by length: padding it must not raise the bill. This also makes the
        // items' offsets, which the loops below read without bounds checks, the canonical ones.
        _checkCanonicalCalldata(itemBytes, offsetsOff, items, members, signatures);
        (uint256 signedStake, uint256 totalStake) =
            _checkSignatures(header, itemsHash, members, signerBitmap, signatures);

        uint256 signedStake10k = signedStake * 10_000;
        // The batch's prices, once: the price it is billed per gas (what the executor paid,
        // within the block's base fee plus the largest tip, and the cap) and the price of the
        // funding check (the block's bound); a job's own maxGasPrice lowers both for its items.
        uint256 bound = block.basefee + maxPriorityFee;
        if (bound > gasPriceCap) bound = gasPriceCap;
        uint256 billed = tx.gasprice < bound ? tx.gasprice : bound;
        uint256 loopGas; // measured around the items, executed and skipped
        uint256 count;
        for (uint256 i = 0; i < n;) {
            uint256 itemStart = gasleft();
            uint256 p; // the item's place in calldata: canonical, checked above
            assembly ("memory-safe") {
                p := add(ITEMS_OFFSET, calldataload(add(ITEMS_OFFSET, shl(5, i))))
            }
            (bytes4 reason, uint256 outcome) = _runItem(header.checkBlock, p, signedStake10k, totalStake, bound);
            unchecked {
                if (reason != 0) {
                    (uint256 jobId, uint256 round) = _jobAndRound(p);
                    emit JobSkipped(jobId, uint64(round), reason);
                } else {
                    executed |= 1 << i;
                    ++count;
                    // Its own gas: measured so far, its settlement after the loop, and its
                    // calldata (offset word, four head words, payload length and payload).
                    uint256 ownGas = itemStart - gasleft() + ITEM_SETTLE_GAS + 16 * (0xc0 + _paddedPayload(p));
                    // The item's outcome, in its word of the region _hashItems allocated.
                    assembly ("memory-safe") {
                        mstore(add(hashes, shl(5, i)), or(outcome, ownGas))
                    }
                }
                loopGas += itemStart - gasleft();
                ++i;
            }
        }
        if (count == 0) revert NothingExecuted();

        uint256 earned = earnings[msg.sender];
        // The shared part: the base, the header, the signatures, members' and signatures'
        // calldata, the loop and the credit write (a fresh slot costs 20,000 more), evenly.
        uint256 share = (
            startGas - gasleft() - loopGas + BILLING_BASE_GAS + 16 * (msg.data.length - itemBytes)
                + (earned == 0 ? POST_PAYMENT_GAS + FRESH_CREDIT_GAS : POST_PAYMENT_GAS)
        ) / count;
        uint256 total;
        for (uint256 i = 0; i < n;) {
            if ((executed >> i) & 1 != 0) {
                uint256 p;
                uint256 outcome;
                assembly ("memory-safe") {
                    p := add(ITEMS_OFFSET, calldataload(add(ITEMS_OFFSET, shl(5, i))))
                    outcome := mload(add(hashes, shl(5, i)))
                }
                total += _settle(p, outcome, share, billed, bound);
            }
            unchecked {
                ++i;
            }
        }
        earnings[msg.sender] = earned + total;
    }

    /// @dev One item: its checks (the first that fails skips it, named by its error's
    ///      selector), then its round spent and its target called. Returns 0 and its outcome
    ///      (OUTCOME_* fields) when it ran. `p` is the item's place in calldata. The job's
    ///      state and config slots are read as words, once each, and the state written once
    ///      (STATE_* and CONFIG_* mirror the packing of JobState and JobConfig).
    function _runItem(
        uint64 checkBlock,
        uint256 p,
        uint256 signedStake10k,
        uint256 totalStake,
        uint256 bound
    ) private returns (bytes4 reason, uint256 outcome) {
        uint256 jobId;
        uint256 round;
        uint256 cursor;
        assembly ("memory-safe") {
            jobId := calldataload(p)
            round := calldataload(add(p, 0x20))
            cursor := calldataload(add(p, 0x40))
        }
        Job storage job = _jobs[jobId];
        uint256 slot;
        uint256 s;
        assembly ("memory-safe") {
            slot := job.slot // JobState is the struct's first slot
            s := sload(slot)
        }
        uint256 maxGasPrice;
        uint256 required;
        (reason, maxGasPrice, required) = _jobSkipReason(checkBlock, p, round, cursor, s, job, bound);
        if (reason != 0) return (reason, 0);
        // A Time, Cron or Event job's call lives in its forwarder's code: its item carries none.
        if ((s >> STATE_KIND) & 0xff != uint256(TriggerKind.Condition) && _paddedPayload(p) != 0) {
            return (PayloadMismatch.selector, 0);
        }
        uint256 cfg;
        assembly ("memory-safe") {
            cfg := sload(add(slot, 1)) // JobConfig
        }
        reason = _cursorSkipReason(checkBlock, cursor, s, cfg);
        if (reason != 0) return (reason, 0);
        // The job's own threshold against the stake that signed the batch.
        if (signedStake10k < totalStake * ((s >> STATE_THRESHOLD) & 0xffff)) return (InsufficientStake.selector, 0);

        // Effects before the interaction: the round and cursor are spent whatever the target
        // does. (The round equals the job's, a uint32; the cursor passed CursorOutOfRange.)
        uint32 next = uint32(round) + 1;
        s = (s & ~STATE_CURSOR_AND_ROUND) | (cursor << STATE_CURSOR) | (uint256(next) << STATE_ROUND);
        // The worst case is held back from the balance until the item settles after the loop:
        // a later round of the same job in this batch is funded only by what is left.
        unchecked {
            s -= required; // the balance is the word's low bits, and required <= balance
        }
        assembly ("memory-safe") {
            sstore(slot, s)
        }
        (bool success, uint256 gasUsed) = _callTarget(s, cfg, p);
        // Billed to the job: the record of a failure, and the pause that stops failures costing.
        if (!success || (s >> STATE_FAILING) != 0) _recordOutcome(jobId, job, uint64(round), success);
        outcome = (gasUsed << OUTCOME_GAS_USED) | (maxGasPrice << OUTCOME_MAX_GAS_PRICE);
        if (success) outcome |= 1 << OUTCOME_SUCCESS;
    }

    /// @dev The call into the job's forwarder: the gas word, then the payload (Condition mode 1:
    ///      `performUpkeep(payload)`), built past the free memory pointer. A Time, Cron or Event
    ///      item's payload is empty (PayloadMismatch otherwise), so the forwarder gets the gas
    ///      word alone and calls the target with the callData in its own code. Copies no
    ///      return data.
    function _callTarget(uint256 s, uint256 cfg, uint256 p) private returns (bool success, uint256 gasUsed) {
        uint256 gasLimit = (s >> STATE_GAS_LIMIT) & 0xffffff;
        uint256 forwarderGas = (gasLimit * 64) / 63 + FORWARDER_GAS;
        uint256 needed = (forwarderGas * 64) / 63 + POST_CALL_GAS;
        if (gasleft() < needed) revert InsufficientGasForTarget(gasleft(), needed);
        bool upkeep = (s >> STATE_KIND) & 0xff == uint256(TriggerKind.Condition) && cfg >> CONFIG_MODE == 1;
        address forwarder = address(uint160(cfg));
        assembly ("memory-safe") {
            let payloadOffset := add(p, 0xa0)
            let payloadLength := calldataload(add(p, 0x80))
            let m := mload(0x40)
            mstore(m, gasLimit)
            let size := add(0x20, payloadLength)
            switch upkeep
            case 0 { calldatacopy(add(m, 0x20), payloadOffset, payloadLength) }
            default {
                mstore(add(m, 0x20), shl(224, PERFORM_UPKEEP_SELECTOR_WORD))
                mstore(add(m, 0x24), 0x20)
                mstore(add(m, 0x44), payloadLength)
                calldatacopy(add(m, 0x64), payloadOffset, payloadLength)
                mstore(add(add(m, 0x64), payloadLength), 0)
                size := add(0x64, and(add(payloadLength, 31), not(31)))
            }
            let before := gas()
            success := call(forwarderGas, forwarder, 0, m, size, 0, 0)
            gasUsed := sub(before, gas())
        }
    }

    /// @dev After the loop: the item's whole payment (its own gas and its share of the batch's
    ///      shared gas at the billed price, and the premium), taken from the job's balance in
    ///      one write, capped at the balance (read again: a top-up the target made is kept);
    ///      `JobExecuted`, and `JobUnderfunded` when one more execution is not covered.
    function _settle(uint256 p, uint256 outcome, uint256 share, uint256 billed, uint256 bound)
        private
        returns (uint256 payment)
    {
        (uint256 jobId, uint256 round) = _jobAndRound(p);
        uint256 maxGasPrice = uint64(outcome >> OUTCOME_MAX_GAS_PRICE);
        if (maxGasPrice != 0) {
            if (billed > maxGasPrice) billed = maxGasPrice;
            if (bound > maxGasPrice) bound = maxGasPrice;
        }
        Job storage job = _jobs[jobId];
        uint256 s;
        assembly ("memory-safe") {
            s := sload(job.slot)
        }
        uint256 required = (((s >> STATE_GAS_LIMIT) & 0xffffff) + MAX_EXECUTION_OVERHEAD_GAS) * bound + premium;
        // The worst case held back when the item ran comes back (the same sum: the same gas
        // limit, bound and premium).
        uint256 balance = (s & STATE_BALANCE) + required;
        payment = (uint64(outcome) + share) * billed + premium;
        if (payment > balance) payment = balance;
        unchecked {
            balance -= payment;
        }
        // Only a top-up by the target of more than 2**88 wei less the hold could pass the field.
        if (balance > STATE_BALANCE) revert BalanceOverflow();
        s = (s & ~STATE_BALANCE) | balance;
        assembly ("memory-safe") {
            sstore(job.slot, s)
        }
        uint256 cursor;
        assembly ("memory-safe") {
            cursor := calldataload(add(p, 0x40))
        }
        emit JobExecuted(
            jobId,
            uint64(round),
            cursor,
            msg.sender,
            (outcome >> OUTCOME_SUCCESS) & 1 != 0,
            uint64(outcome >> OUTCOME_GAS_USED),
            payment
        );
        if (balance < required) emit JobUnderfunded(jobId, balance, required);
    }

    /// @dev The job id and round of the item at calldata place `p`.
    function _jobAndRound(uint256 p) private pure returns (uint256 jobId, uint256 round) {
        assembly ("memory-safe") {
            jobId := calldataload(p)
            round := calldataload(add(p, 0x20))
        }
    }

    /// @dev The item's payload length at calldata place `p`, padded to whole words.
    function _paddedPayload(uint256 p) private pure returns (uint256 padded) {
        assembly ("memory-safe") {
            padded := and(add(calldataload(add(p, 0x80)), 31), not(31))
        }
    }

    /// @dev After a failed call: JobFailed with the revert data (bounded), one more failure in a
    ///      row, and the pause once there are `maxFailures`. After a success that ends a run of
    ///      failures: the count back at zero.
    function _recordOutcome(uint256 jobId, Job storage job, uint64 round, bool success) private {
        if (success) {
            job.state.failing = false;
            job.limits.failures = 0;
            return;
        }
        bytes memory reason;
        assembly ("memory-safe") {
            let n := returndatasize()
            if gt(n, MAX_REASON_BYTES) { n := MAX_REASON_BYTES }
            reason := mload(0x40)
            mstore(reason, n)
            returndatacopy(add(reason, 0x20), 0, n)
            mstore(0x40, add(add(reason, 0x20), and(add(n, 31), not(31))))
        }
        emit JobFailed(jobId, round, reason);
        JobLimits memory l = job.limits;
        uint8 failures = l.failures == type(uint8).max ? l.failures : l.failures + 1;
        job.limits.failures = failures;
        job.state.failing = true;
        uint8 maxFailures = _maxFailures(l.maxFailuresSet);
        if (maxFailures != 0 && failures >= maxFailures && job.state.status == JobStatus.Active) {
            job.state.status = JobStatus.Paused;
            job.limits.haltBlock = uint64(block.number);
            emit JobPaused(jobId);
            emit JobAutoPaused(jobId, failures);
        }
    }

    /// @notice Proves that one keeper signed two conflicting items for the same
    ///         (jobId, round, checkBlock, checkBlockHash), each in a batch of its own or in the
    ///         same one; slashes it and rewards the caller. A proof is the batch's header, its
    ///         item hashes, the item and its index, and the signature over the batch.
    function slashEquivocation(EquivocationProof calldata a, EquivocationProof calldata b) external {
        SignedItem calldata x = a.item;
        SignedItem calldata y = b.item;
        if (
            x.jobId != y.jobId || x.round != y.round || a.header.checkBlock != b.header.checkBlock
                || a.header.checkBlockHash != b.header.checkBlockHash
                || (x.cursor == y.cursor && x.payloadHash == y.payloadHash)
        ) revert NotEquivocation();
        address signerA = _recoverOrRevert(_proofDigest(a), a.signature, 0);
        address signerB = _recoverOrRevert(_proofDigest(b), b.signature, 1);
        if (signerA != signerB) revert DifferentSigners(signerA, signerB);
        emit EquivocationProven(signerA, msg.sender, x.jobId, x.round);
        registry.slash(signerA, msg.sender);
    }

    /// @dev The digest a proof's signature signs, once its item is the one hashed at its index.
    function _proofDigest(EquivocationProof calldata p) private view returns (bytes32) {
        bytes32[] calldata hashes = p.itemHashes;
        if (p.index >= hashes.length || hashes[p.index] != _hashItem(p.item)) revert ItemHashMismatch(p.index);
        return _hashBatch(p.header, keccak256(abi.encodePacked(hashes)));
    }

    /// @notice Pays out what the caller earned by executing jobs.
    function withdrawEarnings() external nonReentrant {
        uint256 amount = earnings[msg.sender];
        if (amount == 0) revert NothingToWithdraw();
        earnings[msg.sender] = 0;
        emit EarningsWithdrawn(msg.sender, amount);
        Address.sendValue(payable(msg.sender), amount);
    }

    // ------------------------------------------------------------------ views

    /// @notice The EIP-712 struct hash of one signed item (`Item`).
    function hashItem(SignedItem calldata item) external pure returns (bytes32) {
        return _hashItem(item);
    }

    /// @notice The EIP-712 digest keepers sign for a batch: its header and its items' hashes.
    function hashBatch(BatchHeader calldata header, bytes32[] calldata itemHashes) external view returns (bytes32) {
        return _hashBatch(header, keccak256(abi.encodePacked(itemHashes)));
    }

    function _hashItem(SignedItem calldata item) private pure returns (bytes32) {
        return keccak256(abi.encode(ITEM_TYPEHASH, item));
    }

    function _hashBatch(BatchHeader calldata header, bytes32 itemsHash) private view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(BATCH_TYPEHASH, header, itemsHash)));
    }

    /// @notice Smallest balance with which a job may execute: one worst-case execution.
    function minBalance(uint256 jobId) external view returns (uint256) {
        Job storage job = _jobs[jobId];
        if (job.state.status == JobStatus.None) revert UnknownJob(jobId);
        return _minBalance(job.state.gasLimit, job.limits.maxGasPrice);
    }

    /// @notice The deposit `createJob` requires for a job with this gas limit and maximum gas
    ///         price (0 = none).
    function requiredDeposit(uint32 gasLimit, uint64 maxGasPrice) external view returns (uint256) {
        return _minBalance(gasLimit, maxGasPrice);
    }

    /// @notice How many executions the job's balance pays for at this block's price, counting
    ///         each at its worst case (the whole gas limit plus the largest overhead), and that
    ///         cost, which is also the job's minimum balance.
    function runway(uint256 jobId) external view returns (uint256 executions, uint256 costPerExecution) {
        Job storage job = _jobs[jobId];
        JobState memory s = job.state;
        if (s.status == JobStatus.None) revert UnknownJob(jobId);
        costPerExecution = _minBalance(s.gasLimit, job.limits.maxGasPrice);
        executions = s.balance / costPerExecution;
    }

    /// @notice The caller a job's target sees: the job's own forwarder, fixed for its life.
    function forwarderOf(uint256 jobId) external view returns (address) {
        Job storage job = _jobs[jobId];
        if (job.state.status == JobStatus.None) revert UnknownJob(jobId);
        return job.config.forwarder;
    }

    /// @notice The forwarder `owner`'s next `createJob` will deploy and use: a target can be
    ///         locked to it before the job exists, and no other account can take that address.
    function nextForwarder(address owner) external view returns (address) {
        return _forwarderAddress(_forwarderSalt(owner, forwarderNonce[owner]));
    }

    function getJob(uint256 jobId) external view returns (JobView memory v) {
        Job storage job = _jobs[jobId];
        JobState memory s = job.state;
        if (s.status == JobStatus.None) revert UnknownJob(jobId);
        JobConfig memory c = job.config;
        JobLimits memory l = job.limits;
        v = JobView({
            owner: job.owner,
            status: s.status,
            kind: s.kind,
            target: job.target,
            gasLimit: s.gasLimit,
            thresholdBps: s.thresholdBps,
            startTime: c.startTime,
            endTime: l.endTime,
            maxExecutions: l.maxExecutions,
            interval: c.interval,
            mode: c.mode,
            balance: s.balance,
            round: s.round,
            lastCursor: s.lastCursor,
            callDataHash: job.callDataHash,
            forwarder: c.forwarder,
            maxGasPrice: l.maxGasPrice,
            haltBlock: l.haltBlock,
            pendingOwner: _pendingOwner[jobId],
            failures: l.failures,
            maxFailures: _maxFailures(l.maxFailuresSet)
        });
    }

    // ------------------------------------------------------------------ internals

    function _ownedJob(uint256 jobId) private view returns (JobState storage s) {
        Job storage job = _jobs[jobId];
        s = job.state;
        if (s.status == JobStatus.None) revert UnknownJob(jobId);
        if (job.owner != msg.sender) revert NotJobOwner(msg.sender, job.owner);
    }

    /// @dev One worst-case execution (the whole gas limit and the largest overhead) at the
    ///      highest price an execution in this block can be billed: the base fee plus the
    ///      largest tip, within the network's cap and the job's own maximum. Not the cap alone,
    ///      which on a cheap chain is hundreds of times the real price and strands deposits.
    function _minBalance(uint256 gasLimit, uint256 maxGasPrice) private view returns (uint256) {
        uint256 price = block.basefee + maxPriorityFee;
        if (price > gasPriceCap) price = gasPriceCap;
        if (maxGasPrice != 0 && price > maxGasPrice) price = maxGasPrice;
        return (gasLimit + MAX_EXECUTION_OVERHEAD_GAS) * price + premium;
    }

    /// @dev Failed executions in a row that pause a job, from its stored setting (0: never).
    function _maxFailures(uint8 stored) private pure returns (uint8) {
        if (stored == 0) return DEFAULT_MAX_FAILURES;
        if (stored == NEVER_PAUSE) return 0;
        return stored;
    }

    /// @dev The registry, this contract and every forwarder carry privileges no job may borrow.
    function _isPrivileged(address account) private view returns (bool) {
        return account == address(this) || account == address(registry) || jobOfForwarder[account] != 0;
    }

    function _forwarderSalt(address owner, uint256 nonce) private pure returns (bytes32) {
        return keccak256(abi.encode(owner, nonce));
    }

    function _forwarderAddress(bytes32 salt) private view returns (address) {
        return address(uint160(uint256(keccak256(abi.encodePacked(bytes1(0xff), address(this), salt, forwarderCodeHash)))));
    }

    /// @dev CREATE2 from constant init code; the constructor reads its target and callData
    ///      back from here (`forwarderCall`), from transient slots cleared afterwards.
    function _deployForwarder(uint256 jobId, address target, bytes calldata callData)
        private
        returns (address forwarder)
    {
        bytes32 salt = _forwarderSalt(msg.sender, forwarderNonce[msg.sender]++);
        uint256 words = (callData.length + 31) >> 5;
        assembly ("memory-safe") {
            tstore(FORWARDER_CALL_SLOT, target)
            tstore(add(FORWARDER_CALL_SLOT, 1), callData.length)
            for { let i := 0 } lt(i, words) { i := add(i, 1) } {
                tstore(add(FORWARDER_CALL_SLOT, add(i, 2)), calldataload(add(callData.offset, shl(5, i))))
            }
        }
        forwarder = address(new JobForwarder{salt: salt}());
        assembly ("memory-safe") {
            for { let i := 0 } lt(i, add(words, 2)) { i := add(i, 1) } { tstore(add(FORWARDER_CALL_SLOT, i), 0) }
        }
        jobOfForwarder[forwarder] = jobId;
    }

    /// @dev `execute`'s calldata must be exactly the standard ABI encoding of its arguments:
    ///      the selector, 10 head words (6 of the header, 3 offsets, the bitmap), three length
    ///      words, the items' own bytes, the members and the signatures, each tail where the
    ///      standard encoding puts it. `offsetsOff` is nonzero when an item's offset, its payload's
    ///      offset or its round was not the canonical one (`_hashItems`). The length alone does
    ///      not fix the offsets (a gap before one tail and a shorter tail elsewhere), so the
    ///      three tails' offsets are checked too; with them, every item lies where `execute`
    ///      computes it and inside the calldata.
    function _checkCanonicalCalldata(
        uint256 itemBytes,
        uint256 offsetsOff,
        Item[] calldata items,
        bytes32[] calldata members,
        bytes calldata signatures
    ) private pure {
        uint256 membersOffset = ITEMS_OFFSET + itemBytes + 32;
        uint256 signaturesOffset = membersOffset + members.length * 32 + 32;
        uint256 canonical = signaturesOffset + ((signatures.length + 31) & ~uint256(31));
        assembly ("memory-safe") {
            offsetsOff := or(offsetsOff, xor(items.offset, ITEMS_OFFSET))
            offsetsOff := or(offsetsOff, xor(members.offset, membersOffset))
            offsetsOff := or(offsetsOff, xor(signatures.offset, signaturesOffset))
        }
        if (msg.data.length != canonical || offsetsOff != 0) revert NonCanonicalCalldata(msg.data.length, canonical);
    }

    /// @dev Executor, deadline and the check block: what every item shares.
    function _checkHeader(BatchHeader calldata header) private view {
        if (msg.sender != header.executor) revert NotExecutor(msg.sender, header.executor);
        if (block.number > header.deadline) revert ReportExpired(header.deadline, block.number);
        uint64 checkBlock = header.checkBlock;
        if (checkBlock >= block.number) revert CheckBlockInFuture(checkBlock, block.number);
        if (block.number - checkBlock > MAX_CHECK_AGE) revert StaleCheckBlock(checkBlock, block.number);
        if (blockhash(checkBlock) != header.checkBlockHash) revert CheckBlockHashMismatch(checkBlock);
    }

    /// @dev Every item's job must be served by `header.quorum` in `header.epoch`. Reads the items
    ///      straight from calldata (the compiler's decoder bounds-checks every member access of a
    ///      nested array of dynamic structs) and returns: a memory region of 2n words (n left for
    ///      the items' outcomes, then their EIP-712 struct hashes), the items' canonical calldata
    ///      bytes, the hash of their struct hashes (the `items` member of `Batch`), and nonzero
    ///      `offsetsOff` when an item's offset or its payload's is not the canonical one or its
    ///      round is not a uint64. Reading follows the offsets as the decoder would (a payload
    ///      length is capped at the calldata's size, so no copy can be huge); the values count
    ///      only once `_checkCanonicalCalldata` has passed, which `execute` checks before using
    ///      any of them for more than a quorum lookup.
    function _hashItems(BatchHeader calldata header, Item[] calldata items)
        private
        view
        returns (uint256 hashes, uint256 itemBytes, bytes32 itemsHash, uint256 offsetsOff)
    {
        EpochHeader memory h = _epochOf(header.epoch);
        bytes32 seed = bytes32(h.seed);
        uint256 count = h.count;
        uint256 quorum = header.quorum;
        bytes32 typehash = ITEM_TYPEHASH;
        uint256 n = items.length;
        uint256 base;
        assembly ("memory-safe") {
            base := items.offset
            hashes := mload(0x40)
            mstore(0x40, add(hashes, shl(6, n)))
        }
        uint256 expected = n << 5; // item 0's canonical offset: right after the n offset words
        for (uint256 i = 0; i < n;) {
            uint256 jobId;
            uint256 quorumWord;
            // In scratch memory past the free pointer: the payload's hash, the item's EIP-712
            // struct hash, and keccak256(abi.encode(seed, jobId)) (KeeperRegistry.quorumOf).
            assembly ("memory-safe") {
                let off := calldataload(add(base, shl(5, i)))
                let p := add(base, off)
                jobId := calldataload(p)
                let round := calldataload(add(p, 0x20))
                let len := calldataload(add(p, 0x80))
                offsetsOff := or(offsetsOff, or(xor(off, expected), or(shr(64, round), xor(calldataload(add(p, 0x60)), 0x80))))
                if gt(len, calldatasize()) {
                    offsetsOff := 1
                    len := 0
                }
                let m := mload(0x40)
                calldatacopy(m, add(p, 0xa0), len)
                let payloadHash := keccak256(m, len)
                mstore(m, typehash)
                mstore(add(m, 0x20), jobId)
                mstore(add(m, 0x40), round)
                mstore(add(m, 0x60), calldataload(add(p, 0x40)))
                mstore(add(m, 0x80), payloadHash)
                mstore(add(hashes, shl(5, add(n, i))), keccak256(m, 0xa0))
                mstore(m, seed)
                quorumWord := keccak256(m, 0x40)
                let padded := and(add(len, 31), not(31))
                expected := add(expected, add(0xa0, padded))
                itemBytes := add(itemBytes, add(0xc0, padded))
                i := add(i, 1)
            }
            if (quorumWord % count != quorum) revert JobNotInQuorum(jobId, header.quorum);
        }
        assembly ("memory-safe") {
            itemsHash := keccak256(add(hashes, shl(5, n)), shl(5, n))
        }
    }

    /// @dev Status, round, limits and funding of the item's job (state word `s`, `bound` the
    ///      batch's funding price): the selector of the first check that fails (0: none), and the
    ///      job's maximum gas price (0 = none).
    function _jobSkipReason(
        uint64 checkBlock,
        uint256 p,
        uint256 round,
        uint256 cursor,
        uint256 s,
        Job storage job,
        uint256 bound
    ) private view returns (bytes4, uint256 maxGasPrice, uint256 required) {
        uint256 status = (s >> STATE_STATUS) & 0xff;
        if (status != uint256(JobStatus.Active)) {
            if (status == uint256(JobStatus.None)) return (UnknownJob.selector, 0, 0);
            // A report checked before the pause or cancel was signed in good faith: it stays valid.
            if (checkBlock >= job.limits.haltBlock) {
                return (status == uint256(JobStatus.Paused) ? JobIsPaused.selector : JobIsCancelled.selector, 0, 0);
            }
        }
        uint256 jobRound = (s >> STATE_ROUND) & 0xffffffff;
        if (round != jobRound) return (WrongRound.selector, 0, 0);
        if ((s >> STATE_LIMITED) & 0xff != 0) {
            JobLimits memory l = job.limits;
            if (l.maxExecutions != 0 && jobRound >= l.maxExecutions) return (MaxExecutionsReached.selector, 0, 0);
            // A Time or Cron slot at or before the end may still be executed late.
            uint256 kind = (s >> STATE_KIND) & 0xff;
            if (
                l.endTime != 0 && block.timestamp > l.endTime
                    && ((kind != uint256(TriggerKind.Time) && kind != uint256(TriggerKind.Cron)) || cursor > l.endTime)
            ) return (JobExpired.selector, 0, 0);
            maxGasPrice = l.maxGasPrice;
            if (maxGasPrice != 0 && bound > maxGasPrice) bound = maxGasPrice;
        }
        required = (((s >> STATE_GAS_LIMIT) & 0xffffff) + MAX_EXECUTION_OVERHEAD_GAS) * bound + premium;
        if (s & STATE_BALANCE < required) return (InsufficientBalance.selector, 0, 0);
        uint256 length;
        assembly ("memory-safe") {
            length := calldataload(add(p, 0x80))
        }
        if (length > MAX_CALLDATA) return (PayloadTooLong.selector, 0, 0);
        return (0, maxGasPrice, required);
    }

    /// @dev The trigger rule of the job's kind (state word `s`, config word `cfg`): the
    ///      selector of the broken rule, 0 when none.
    function _cursorSkipReason(uint64 checkBlock, uint256 cursor, uint256 s, uint256 cfg)
        private
        view
        returns (bytes4)
    {
        if (cursor > type(uint64).max) return CursorOutOfRange.selector;
        uint256 lastCursor = (s >> STATE_CURSOR) & 0xffffffffffffffff;
        if (cursor <= lastCursor) return CursorNotRaised.selector;
        uint256 kind = (s >> STATE_KIND) & 0xff;
        uint256 startTime = (cfg >> CONFIG_START_TIME) & 0xffffffffff;
        uint256 interval = (cfg >> CONFIG_INTERVAL) & 0xffffffffffff;
        if (kind == uint256(TriggerKind.Time) || kind == uint256(TriggerKind.Cron)) {
            // (A slot after endTime is caught in _jobSkipReason: it would lie in the future.)
            if (cursor > block.timestamp) return CursorInFuture.selector;
            if (cursor < startTime) return CursorBeforeStart.selector;
            if (kind == uint256(TriggerKind.Time) && (cursor - startTime) % interval != 0) return CursorOffGrid.selector;
            if (kind == uint256(TriggerKind.Cron) && cursor % CRON_GRID != 0) return CursorOffGrid.selector;
            return 0;
        }
        if (block.timestamp < startTime) return JobNotStarted.selector;
        if (kind == uint256(TriggerKind.Event)) {
            if ((cursor >> 32) + interval > checkBlock) return LogNotConfirmed.selector;
            return 0;
        }
        // Condition: the cursor is the check block, spaced by minInterval.
        if (cursor != checkBlock) return CursorMismatch.selector;
        if (lastCursor != 0 && cursor < lastCursor + interval) return ConditionTooSoon.selector;
        return 0;
    }

    /// @dev Members against the quorum's commitment, then one signature per set bit over the
    ///      batch, and a majority by count. Returns the signed and the total stake: each item's
    ///      job checks them against its own threshold.
    function _checkSignatures(
        BatchHeader calldata header,
        bytes32 itemsHash,
        bytes32[] calldata members,
        uint256 bitmap,
        bytes calldata signatures
    ) private view returns (uint256 signedStake, uint256 totalStake) {
        uint256 n = members.length;
        if (n > MAX_MEMBERS) revert TooManyMembers(n);
        bytes32 membersHash;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            calldatacopy(ptr, members.offset, mul(n, 0x20))
            membersHash := keccak256(ptr, mul(n, 0x20))
        }
        if (membersHash != _quorumHash[header.epoch][header.quorum]) revert QuorumMismatch();
        if (n < 256 && bitmap >> n != 0) revert BitmapOutOfRange();
        uint256 count = _popcount(bitmap);
        // A majority of members by count as well as the stake threshold: no single large
        // stake signs alone (weights are also capped at rotation).
        if (count * 2 <= n) revert TooFewSigners(count, n);
        if (signatures.length != count * 65) revert SignatureCountMismatch(count * 65, signatures.length);

        bytes32 digest = _hashBatch(header, itemsHash);
        uint256 sigIndex;
        for (uint256 i = 0; i < n; ++i) {
            uint256 word = uint256(members[i]);
            uint256 stake = uint96(word);
            totalStake += stake;
            if ((bitmap >> i) & 1 == 0) continue;
            address signer;
            bool highS;
            assembly ("memory-safe") {
                // ecrecover straight from calldata into scratch memory; rejects high-s (malleable)
                // signatures like OpenZeppelin's ECDSA, which the failure path below names.
                let p := add(signatures.offset, mul(sigIndex, 65))
                let sv := calldataload(add(p, 0x20))
                highS := gt(sv, 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0)
                let m := mload(0x40)
                mstore(m, digest)
                mstore(add(m, 0x20), byte(0, calldataload(add(p, 0x40))))
                mstore(add(m, 0x40), calldataload(p))
                mstore(add(m, 0x60), sv)
                mstore(0, 0)
                pop(staticcall(gas(), 0x01, m, 0x80, 0, 0x20))
                signer := mul(iszero(highS), mload(0))
            }
            if (signer != address(uint160(word >> 96))) {
                _revertBadSignature(members, bitmap, i, sigIndex, signer, highS);
            }
            signedStake += stake;
            ++sigIndex;
        }
    }

    /// @dev The epoch a batch names (current, or previous within the grace period), with a quorum.
    function _epochOf(uint64 epoch) private view returns (EpochHeader memory h) {
        h = _epochNow;
        if (epoch != h.epoch || epoch == 0) {
            if (epoch == 0 || epoch + 1 != h.epoch || block.number > uint256(h.startBlock) + EPOCH_GRACE_BLOCKS) {
                revert EpochNotActive(epoch, h.epoch);
            }
            h = _epochBefore;
        }
        if (h.count == 0) revert NoQuorums(epoch);
    }

    /// @dev Failure path only: names what is wrong with the signature at `sigIndex`.
    function _revertBadSignature(
        bytes32[] calldata members,
        uint256 bitmap,
        uint256 memberIndex,
        uint256 sigIndex,
        address signer,
        bool highS
    ) private pure {
        if (highS) revert MalleableSignature(sigIndex);
        if (signer == address(0)) revert InvalidSignature(sigIndex);
        for (uint256 j = 0; j < members.length; ++j) {
            if (address(uint160(uint256(members[j]) >> 96)) != signer) continue;
            if ((bitmap >> j) & 1 == 0) revert SignerNotMember(sigIndex, signer);
            if (j < memberIndex) revert DuplicateSignature(sigIndex, signer);
            revert SignatureOrderMismatch(sigIndex, signer);
        }
        revert SignerNotMember(sigIndex, signer);
    }

    function _recoverOrRevert(bytes32 digest, bytes calldata sig, uint256 index) private pure returns (address) {
        if (sig.length != 65) revert InvalidSignature(index);
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, sig);
        if (err == ECDSA.RecoverError.InvalidSignatureS) revert MalleableSignature(index);
        if (signer == address(0)) revert InvalidSignature(index);
        return signer;
    }

    function _popcount(uint256 x) private pure returns (uint256 c) {
        unchecked {
            while (x != 0) {
                x &= x - 1;
                ++c;
            }
        }
    }

    /// @dev Decodes and checks `trigger` for `kind` with named errors; abi.decode would revert
    ///      without a reason on malformed bytes. Returns the schedule's interval and mode.
    function _validateTrigger(TriggerKind kind, bytes calldata trigger) private view returns (uint48, uint8) {
        if (kind == TriggerKind.Time) {
            if (trigger.length != 32) revert MalformedTrigger(kind);
            uint256 interval = uint256(bytes32(trigger[0:32]));
            if (interval > type(uint48).max) revert MalformedTrigger(kind);
            if (interval < MIN_INTERVAL) revert IntervalTooShort(uint64(interval), MIN_INTERVAL);
            return (uint48(interval), 0);
        }
        if (kind == TriggerKind.Cron) {
            bytes calldata expr = _decodeBytesAt(trigger, 0, 1, kind);
            if (expr.length == 0 || expr.length > MAX_CRON_LENGTH || !_isFiveFields(expr)) revert MalformedTrigger(kind);
            return (0, 0);
        }
        if (kind == TriggerKind.Event) {
            if (trigger.length != 192) revert MalformedTrigger(kind);
            uint256 emitter = uint256(bytes32(trigger[0:32]));
            uint256 confirmations = uint256(bytes32(trigger[160:192]));
            if (emitter > type(uint160).max || confirmations > type(uint16).max) revert MalformedTrigger(kind);
            if (emitter == 0) revert ZeroEmitter();
            if (confirmations > MAX_CONFIRMATIONS) revert ConfirmationsTooHigh(uint16(confirmations), MAX_CONFIRMATIONS);
            return (uint48(confirmations), 0);
        }
        // Condition: (address resolver, bytes resolverCalldata, uint8 mode, uint64 minInterval)
        if (trigger.length < 160) revert MalformedTrigger(kind);
        uint256 resolver = uint256(bytes32(trigger[0:32]));
        uint256 mode = uint256(bytes32(trigger[64:96]));
        uint256 minInterval = uint256(bytes32(trigger[96:128]));
        if (resolver > type(uint160).max || mode > 1 || minInterval > type(uint48).max) revert MalformedTrigger(kind);
        bytes calldata data = _decodeBytesAt(trigger, 1, 4, kind);
        if (data.length > MAX_CALLDATA) revert CallDataTooLong(data.length, MAX_CALLDATA);
        if (address(uint160(resolver)).code.length == 0) revert ResolverNotContract(address(uint160(resolver)));
        if (_isPrivileged(address(uint160(resolver)))) revert ForbiddenResolver(address(uint160(resolver)));
        if (minInterval == 0) revert IntervalTooShort(0, 1);
        return (uint48(minInterval), uint8(mode));
    }

    /// @dev The dynamic `bytes`/`string` at head slot `slot` of a tuple with `headWords` head words,
    ///      requiring the canonical encoding (offset right after the head, nothing trailing).
    function _decodeBytesAt(bytes calldata enc, uint256 slot, uint256 headWords, TriggerKind kind)
        private
        pure
        returns (bytes calldata out)
    {
        uint256 head = headWords * 32;
        if (enc.length < head + 32) revert MalformedTrigger(kind);
        uint256 offset = uint256(bytes32(enc[slot * 32:slot * 32 + 32]));
        if (offset != head) revert MalformedTrigger(kind);
        uint256 len = uint256(bytes32(enc[head:head + 32]));
        if (len > enc.length) revert MalformedTrigger(kind); // bounds the padding arithmetic only
        uint256 padded = (len + 31) & ~uint256(31);
        if (enc.length != head + 32 + padded) revert MalformedTrigger(kind);
        out = enc[head + 32:head + 32 + len];
    }

    /// @dev Five fields separated by single spaces, no leading or trailing space.
    function _isFiveFields(bytes calldata expr) private pure returns (bool) {
        uint256 spaces;
        bytes1 prev = " ";
        for (uint256 i = 0; i < expr.length; ++i) {
            bytes1 ch = expr[i];
            if (ch == " ") {
                if (prev == " ") return false;
                ++spaces;
            } else if (uint8(ch) < 0x21 || uint8(ch) > 0x7e) {
                return false;
            }
            prev = ch;
        }
        return spaces == 4 && prev != " ";
    }
}
